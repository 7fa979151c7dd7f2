// The cluster's CurveZMQ keys (`roster keys generate`, `--cluster-keys`): the one place that
// writes and loads the key file and that says how each role's sockets use it. The leader's
// ROUTER and PUB are CURVE servers; a ZAP handler (RFC 27) admits only the follower public key,
// so a peer without the cluster's keys never completes a handshake and never reaches the
// protocol. Workers and gateways connect as CURVE clients. Providers' heartbeat sockets stay
// plain: providers are outside the cluster (server/protocol/README.md §6).
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { curveKeyPair, Reply } from 'zeromq'
import { isLoopbackHost } from './endpoints.js'
import { Errors } from './error-codes.js'

/** A Z85-encoded CURVE key: 32 bytes are 40 characters of the Z85 alphabet (ZeroMQ RFC 32). */
const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#'
const Z85Key = Type.String({ minLength: 40, maxLength: 40, pattern: '^[0-9a-zA-Z.\\-:+=^!/*?&<>()\\[\\]{}@%$#]{40}$' })
const KeyPair = Type.Object({ publicKey: Z85Key, secretKey: Z85Key }, { additionalProperties: false })

/** The key file: `{ "version": 1, "leader": {publicKey, secretKey}, "follower": {…} }`. The
 *  leader keypair belongs to every leader (standbys included), the follower keypair to every
 *  worker and gateway; anyone holding the file is a member of the cluster. */
export const ClusterKeys = Type.Object(
  { version: Type.Literal(1), leader: KeyPair, follower: KeyPair },
  { additionalProperties: false }
)
export type ClusterKeys = Static<typeof ClusterKeys>
const checkKeys = TypeCompiler.Compile(ClusterKeys)

export class ClusterKeysError extends Error {
  readonly code = Errors.clusterKeys.code
  override name = 'ClusterKeysError'
}

export function generateClusterKeys (): ClusterKeys {
  return { version: 1, leader: curveKeyPair(), follower: curveKeyPair() }
}

/** Writes a new key file readable by its owner only; an existing file is kept unless `force`. */
export function writeClusterKeys (file: string, opts: { force?: boolean } = {}): ClusterKeys {
  const keys = generateClusterKeys()
  try {
    writeFileSync(file, JSON.stringify(keys, null, 2) + '\n', { mode: 0o600, flag: opts.force === true ? 'w' : 'wx' })
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') throw new ClusterKeysError(`${file} already exists; pass --force to replace it (every role must then get the new file)`)
    throw err
  }
  // `mode` applies only to a file the call creates; a forced overwrite keeps the old mode.
  chmodSync(file, 0o600)
  return keys
}

/** Reads and checks a key file: it must be the owner's alone (no group or other bits), since
 *  whoever reads it can join the cluster, and it must have the documented shape. */
export function loadClusterKeys (file: string): ClusterKeys {
  let mode: number
  try {
    mode = statSync(file).mode
  } catch (err) {
    throw new ClusterKeysError(`cannot read the cluster key file ${file}: ${(err as Error).message}`)
  }
  if ((mode & 0o077) !== 0) {
    throw new ClusterKeysError(`cluster key file ${file} is readable by others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run chmod 600 ${file}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'))
  } catch {
    throw new ClusterKeysError(`cluster key file ${file} is not JSON; make one with \`roster keys generate ${file}\``)
  }
  if (!checkKeys.Check(parsed)) {
    const first = checkKeys.Errors(parsed).First()
    throw new ClusterKeysError(`cluster key file ${file} is not a Roster key file (${first?.path ?? ''} ${first?.message ?? 'invalid'}); make one with \`roster keys generate ${file}\``)
  }
  return parsed
}

/** The rule for starting a leader: on a non-loopback `--bind` it needs keys, unless the
 *  operator says `--insecure-no-auth`. Returns the message of the refusal, or null. */
export function leaderBindProblem (bind: string, hasKeys: boolean, insecure: boolean): string | null {
  if (hasKeys || insecure || isLoopbackHost(bind.replace(/^tcp:\/\//, '').replace(/:[0-9]+$/, ''))) return null
  return `--bind ${bind} is not a loopback address: anyone who reaches it could act as a worker or gateway. ` +
    'Give the cluster keys with --cluster-keys FILE (make them with `roster keys generate FILE`), ' +
    'or pass --insecure-no-auth to run without them'
}

/** The ZAP domain of a leader without keys. Merely having a domain makes libzmq refuse ZMTP 1.0
 *  peers (zmtp_engine.cpp: "reject ZMTP 1.0 connections if ZAP is enabled"), which it would
 *  otherwise take any garbage that does not start with 0xff for, and hold open for ever. With no
 *  ZAP handler in the process such a NULL connection is admitted as before; with one, the
 *  handler admits it too (answerZap). */
const PLAIN_DOMAIN = 'roster-plain'

/** Options for the leader's ROUTER and PUB: CURVE servers whose ZAP domain names these keys
 *  (see acquireZapHandler). With `zapEnforceDomain`, a handshake fails when no ZAP handler
 *  answers, instead of libzmq's default of admitting everyone. Without keys, plain sockets with
 *  a domain (PLAIN_DOMAIN). */
export function curveServerOptions (keys: ClusterKeys | undefined): Record<string, unknown> {
  if (keys === undefined) return { zapDomain: PLAIN_DOMAIN }
  return { curveServer: true, curveSecretKey: keys.leader.secretKey, zapDomain: zapDomain(keys), zapEnforceDomain: true }
}

/** Options for a follower's DEALER and SUB towards the leader. */
export function curveClientOptions (keys: ClusterKeys | undefined): Record<string, unknown> {
  if (keys === undefined) return {}
  return { curveServerKey: keys.leader.publicKey, curvePublicKey: keys.follower.publicKey, curveSecretKey: keys.follower.secretKey }
}

function zapDomain (keys: ClusterKeys): string {
  return `roster-${keys.leader.publicKey}`
}

/**
 * libzmq asks one ZAP handler per context (the socket bound to inproc://zeromq.zap.01); every
 * socket here lives in zeromq.js's default context, so there is one handler per process, shared
 * by every leader in it (tests run several) and kept while any of them needs it. It answers 200
 * for a CURVE client key admitted in the request's domain and for a keyless leader's NULL
 * connections, 400 to everything else.
 */
const admitted = new Map<string, Map<string, number>>()
let handler: { socket: Reply, bound: Promise<void>, done: Promise<void> } | null = null
let users = 0

/** Admits the follower key of `keys` on the leader sockets that use curveServerOptions(keys),
 *  starting the process's ZAP handler if needed. Call before binding them; the returned
 *  function releases it (after they are closed). */
export async function acquireZapHandler (keys: ClusterKeys): Promise<() => Promise<void>> {
  const domain = zapDomain(keys)
  const client = z85Decode(keys.follower.publicKey).toString('hex')
  const byKey = admitted.get(domain) ?? new Map<string, number>()
  byKey.set(client, (byKey.get(client) ?? 0) + 1)
  admitted.set(domain, byKey)
  users++
  if (handler === null) {
    const socket = new Reply({ linger: 0 })
    const bound = socket.bind('inproc://zeromq.zap.01')
    handler = { socket, bound, done: bound.then(async () => await answerZap(socket)) }
  }
  await handler.bound
  let released = false
  return async () => {
    if (released) return
    released = true
    const n = (byKey.get(client) ?? 1) - 1
    if (n === 0) byKey.delete(client)
    else byKey.set(client, n)
    if (byKey.size === 0) admitted.delete(domain)
    if (--users > 0 || handler === null) return
    const h = handler
    handler = null
    await h.bound.catch(() => {})
    h.socket.close()
    await h.done
  }
}

async function answerZap (socket: Reply): Promise<void> {
  try {
    for await (const [version, requestId, domain, , , mechanism, credential] of socket) {
      const plain = mechanism?.toString() === 'NULL' && domain?.toString() === PLAIN_DOMAIN
      const member = mechanism?.toString() === 'CURVE' && credential !== undefined &&
        admitted.get(domain?.toString() ?? '')?.has(credential.toString('hex')) === true
      const ok = version?.toString() === '1.0' && (plain || member)
      await socket.send(['1.0', requestId ?? '', ok ? '200' : '400', ok ? 'OK' : 'not a member of this cluster', '', ''])
    }
  } catch (err) {
    // Closing the socket ends the loop; anything else would leave the leaders unguarded, but
    // zapEnforceDomain then makes every handshake fail rather than succeed.
    if ((err as { code?: string }).code !== 'EAGAIN' && !socket.closed) throw err
  }
}

/** Z85 (ZeroMQ RFC 32): every 5 characters encode 4 bytes, big-endian, base 85. */
export function z85Decode (text: string): Buffer {
  const out = Buffer.alloc((text.length / 5) * 4)
  for (let i = 0; i < text.length; i += 5) {
    let value = 0
    for (let j = 0; j < 5; j++) value = value * 85 + Z85_ALPHABET.indexOf(text[i + j] as string)
    out.writeUInt32BE(value >>> 0, (i / 5) * 4)
  }
  return out
}
