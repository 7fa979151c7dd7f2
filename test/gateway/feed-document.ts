// The change feed's AsyncAPI document as the tests read it: the committed openapi/asyncapi.json,
// and Ajv validators for its messages, built FROM the document (not from the server's schemas),
// so that the tests check what the server sends against what the document promises.
import { readFile } from 'node:fs/promises'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'

export const DOCUMENT_URL = new URL('../../openapi/asyncapi.json', import.meta.url)

export interface FeedDocument {
  asyncapi: string
  channels: {
    watch: {
      address: string
      messages: Record<string, { $ref: string }>
      bindings: { ws: { method: string, query: { properties: Record<string, unknown> } } }
      'x-subprotocols': { selected: string, bearerPrefix: string }
      'x-close-codes': Record<string, { name: string, reason?: string, when: string, client: string }>
      'x-upgrade-responses': Record<string, { description: string, payload: { $ref: string } }>
    }
  }
  components: {
    schemas: Record<string, { properties?: Record<string, unknown> }>
    messages: Record<string, { name: string, payload: { $ref: string }, examples?: Array<{ name: string, payload: unknown }> }>
  }
}

export async function readFeedDocument (): Promise<FeedDocument> {
  return JSON.parse(await readFile(DOCUMENT_URL, 'utf8')) as FeedDocument
}

export interface FeedValidators {
  /** Validates a received frame against the message its `type` names; returns the problems
   *  (none when it conforms), including any field the message's schema does not declare. */
  message: (frame: unknown) => string[]
  /** Validates a refused upgrade's body against the document's payload for that status. */
  upgradeError: (status: number, body: unknown) => string[]
  /** Whether the document lists this close code; and its reason, as a pattern. */
  closeCode: (code: number, reason: string) => string[]
}

const BASE = 'https://roster.invalid/asyncapi.json'

export function feedValidators (doc: FeedDocument): FeedValidators {
  // The components are added under one base URI, so the document's `#/components/...`
  // references resolve inside them; `components` is declared a keyword so that strict mode
  // accepts the wrapper. AsyncAPI writes the discriminator as a string annotation.
  const ajv = new Ajv({ allErrors: true })
  // ajv-formats is CommonJS: under NodeNext its default import is module.exports, whose
  // `default` is the plugin (ajv-validator/ajv-formats#85).
  addFormats.default(ajv)
  ajv.addKeyword({ keyword: 'components' })
  ajv.addKeyword({ keyword: 'discriminator', schemaType: 'string' })
  ajv.addSchema({ $id: BASE, components: doc.components }, BASE)
  const compile = (ref: string): ValidateFunction => ajv.compile({ $ref: BASE + ref })
  const channel = doc.channels.watch
  const byName = new Map<string, { validate: ValidateFunction, declared: Set<string> }>()
  for (const ref of Object.values(channel.messages)) {
    const message = doc.components.messages[ref.$ref.replace('#/components/messages/', '')]
    if (message === undefined) throw new Error(`the channel names a message the document lacks: ${ref.$ref}`)
    const schema = doc.components.schemas[message.payload.$ref.replace('#/components/schemas/', '')]
    byName.set(message.name, { validate: compile(message.payload.$ref), declared: new Set(Object.keys(schema?.properties ?? {})) })
  }
  const problems = (v: ValidateFunction): string[] => (v.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`)
  return {
    message (frame) {
      const type = (frame as { type?: unknown }).type
      const entry = typeof type === 'string' ? byName.get(type) : undefined
      if (entry === undefined) return [`no message of type ${String(type)} in the document`]
      const out = entry.validate(frame) ? [] : problems(entry.validate)
      for (const key of Object.keys(frame as object)) if (!entry.declared.has(key)) out.push(`/${key} is not declared by the document`)
      return out
    },
    upgradeError (status, body) {
      const answer = channel['x-upgrade-responses'][String(status)]
      if (answer === undefined) return [`status ${status} is not one the document lists`]
      const v = compile(answer.payload.$ref)
      return v(body) ? [] : problems(v)
    },
    closeCode (code, reason) {
      const listed = channel['x-close-codes'][String(code)]
      if (listed === undefined) return [`close code ${code} is not one the document lists`]
      if (listed.reason === undefined) return []
      // The document writes a resume revision as N.
      const pattern = new RegExp(`^${listed.reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace('N', '\\d+')}$`)
      return pattern.test(reason) ? [] : [`close ${code}: reason ${JSON.stringify(reason)} is not the documented ${JSON.stringify(listed.reason)}`]
    }
  }
}
