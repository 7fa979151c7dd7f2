// `roster ls|get|watch|register|deregister|maintenance`: the registry for people, on roster/client
// (client/), which does the failover between the --url gateways. This is the thin shell: it reads
// the terminal's capabilities, calls the client, prints what people-format.ts makes of the answer
// and turns the outcome into the exit code: 0 done, 1 the server refused or no gateway answered
// (its message printed as it gave it), 2 bad usage. It must never print another user's text
// unescaped, nor ANSI colours into a pipe.
import {
  RosterClient, RosterHttpError, RosterUnavailableError, type RetryInfo, type RosterWatch
} from '../../client/index.js'
import { parsePeople, peopleHelp, usageLine, UsageError, type PeopleAction, type PeopleCommandName, type PeopleInvocation } from './people-args.js'
import { jsonLine, printable } from '../common/printable.js'
import { providerDetails, providersTable, servicesTable, watchLine, writeLine, type Style } from './people-format.js'

/** One call's deadline, every gateway and retry included: a person waits this long at most for
 *  an answer when every gateway is down (the client's own default, 20 s, is for programs). */
const CALL_TIMEOUT_MS = 10_000

export async function peopleCommand (name: PeopleCommandName, argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let invocation: PeopleInvocation | 'help'
  try {
    invocation = parsePeople(name, argv, env)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    return usage(name, err.message)
  }
  if (invocation === 'help') {
    console.log(peopleHelp(name))
    return 0
  }
  // https://no-color.org: set and not empty means no colour, whatever the terminal.
  const colour = process.stdout.isTTY && (env.NO_COLOR ?? '') === ''
  const style = (): Style => ({ colour, now: Date.now() })
  // A reader that stopped (`roster watch | head -1`) is not an error of this command.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0)
    throw err
  })
  const { action, json } = invocation
  let client: RosterClient
  try {
    client = new RosterClient({
      urls: invocation.urls,
      token: invocation.token,
      timeoutMs: CALL_TIMEOUT_MS,
      onRetry: action.kind === 'watch' ? (info) => { reportReconnect(name, info) } : undefined
    })
  } catch (err) {
    if (err instanceof TypeError) return usage(name, err.message)
    throw err
  }
  try {
    if (action.kind === 'watch') return await watch(client, action, json, style)
    console.log(await run(client, action, json, style))
    return 0
  } catch (err) {
    // A service or id the client cannot send (`..`, an unpaired surrogate): the caller's mistake.
    if (err instanceof TypeError) return usage(name, err.message)
    if (err instanceof RosterHttpError) {
      console.error(`roster ${name}: ${printable(err.message)} (${err.statusCode} ${printable(err.code)})`)
      return 1
    }
    if (err instanceof RosterUnavailableError) {
      console.error(`roster ${name}: ${printable(err.message)}`)
      for (const a of err.attempts.slice(-invocation.urls.length)) console.error(`  ${printable(a.gateway)}: ${printable(a.code)}: ${printable(a.message)}`)
      return 1
    }
    throw err
  }
}

function usage (name: PeopleCommandName, message: string): number {
  console.error(`roster ${name}: ${printable(message)}\n\n${usageLine(name)}\nRun \`roster ${name} --help\` for its flags.`)
  return 2
}

/** Every command but watch: one call, one answer printed. */
async function run (client: RosterClient, action: Exclude<PeopleAction, { kind: 'watch' }>, json: boolean, style: () => Style): Promise<string> {
  switch (action.kind) {
    case 'services': {
      const answer = await client.services()
      return json ? jsonLine(answer) : servicesTable(answer.services)
    }
    case 'list': {
      const answer = await client.list(action.service, action.filters)
      return json ? jsonLine(answer) : providersTable(answer.providers, style())
    }
    case 'get': {
      const provider = await client.get(action.service, action.id)
      return json ? jsonLine(provider) : providerDetails(provider, style())
    }
    case 'register': {
      const { provider, revision, created } = await client.register(action.service, action.id, action.spec)
      return json ? jsonLine({ provider, revision }) : writeLine(created ? 'registered' : 'updated', provider.service, provider.id, revision, provider.state)
    }
    case 'deregister': {
      const answer = await client.deregister(action.service, action.id)
      return json ? jsonLine(answer) : writeLine('deregistered', action.service, action.id, answer.revision)
    }
    case 'maintenance': {
      const answer = await client.maintenance(action.service, action.id, { enabled: action.enabled, ...(action.reason === undefined ? {} : { reason: action.reason }) })
      const p = answer.provider
      return json ? jsonLine(answer) : writeLine(action.enabled ? 'maintenance on for' : 'maintenance off for', p.service, p.id, answer.revision, p.state)
    }
  }
}

/** `roster watch`: prints every message as it comes until SIGINT or SIGTERM (exit 0), or until
 *  the server refuses the feed or no gateway takes it for a minute (exit 1). */
async function watch (client: RosterClient, action: Extract<PeopleAction, { kind: 'watch' }>, json: boolean, style: () => Style): Promise<number> {
  const feed: RosterWatch = client.watch({ services: action.services, since: action.since })
  const stop = (): void => { feed.close() }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    for await (const message of feed) console.log(json ? jsonLine(message) : watchLine(message, style()))
    return 0
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}

/** The watch moves to another gateway: said on stderr, so that stdout stays one line per event. */
function reportReconnect (name: string, info: RetryInfo): void {
  const f = info.failure
  console.error(`roster ${name}: ${printable(f.gateway)}: ${printable(f.code)}: ${printable(f.message)}; resuming${info.delayMs > 0 ? ` in ${info.delayMs} ms` : ''}`)
}
