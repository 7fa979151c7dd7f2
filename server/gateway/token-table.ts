// The gateway's copy of the token list: every token's id, name, scopes, expiry and secret hash,
// as the leader last sent it (TOKENS), tagged with the leader's epoch and the list's generation.
// A request is authenticated by hashing the secret it presents and looking the hash up here: no
// database query and no leader round trip per request. Pure state; the leader client feeds it.
import { publicToken, type Token, type TokenRecord } from '../protocol/token-model.js'
import { isAdmin } from '../protocol/scopes.js'
import { hashSecret } from '../common/token-secret.js'

/** What a request carries once authenticated (FastifyRequest.token). */
export interface AuthToken { id: string, name: string, scopes: string[] }

export type Authentication =
  | { ok: true, token: AuthToken }
  /** `not-loaded`: no list from a leader yet, so an unknown secret may well be valid. */
  | { ok: false, reason: 'unknown' | 'expired' | 'not-loaded' }

export interface TokenTable {
  /** False until the first list arrived from a leader. */
  readonly loaded: boolean
  readonly epoch: number
  readonly generation: number
  /** Whether any token has the admin scope (without one, nobody can manage tokens). */
  readonly hasAdmin: boolean
  /** Replaces the list, unless it is older than the one held (an answer overtaken by another). */
  load: (epoch: number, generation: number, tokens: readonly TokenRecord[]) => boolean
  authenticate: (secret: string, nowMs: number) => Authentication
  /** Every token, without secret hashes, oldest first. */
  list: () => Token[]
  /** Resolves true once the list holds generation `generation` of `epoch` (or a later epoch's),
   *  false after `timeoutMs`. */
  waitFor: (epoch: number, generation: number, timeoutMs: number) => Promise<boolean>
}

interface Entry { token: AuthToken, expiresAtMs: number | null }

export function createTokenTable (opts: { onLoad?: (table: TokenTable) => void } = {}): TokenTable {
  let loaded = false
  let epoch = 0
  let generation = 0
  let records: TokenRecord[] = []
  let byHash = new Map<string, Entry>()
  let hasAdmin = false
  const waiters = new Set<() => void>()

  function reached (e: number, g: number): boolean {
    return loaded && (epoch > e || (epoch === e && generation >= g))
  }

  const table: TokenTable = {
    get loaded () { return loaded },
    get epoch () { return epoch },
    get generation () { return generation },
    get hasAdmin () { return hasAdmin },

    load (e, g, tokens) {
      if (loaded && (e < epoch || (e === epoch && g < generation))) return false
      loaded = true
      epoch = e
      generation = g
      records = [...tokens]
      byHash = new Map(tokens.map((t) => [t.secretHash, {
        token: { id: t.id, name: t.name, scopes: [...t.scopes] },
        expiresAtMs: t.expiresAt === null ? null : Date.parse(t.expiresAt)
      }]))
      hasAdmin = tokens.some((t) => isAdmin(t.scopes))
      for (const wake of [...waiters]) wake()
      opts.onLoad?.(table)
      return true
    },

    authenticate (secret, nowMs) {
      // The map is keyed by the hash, so the time a lookup takes says nothing useful about the
      // secret: an attacker cannot steer the hash of a guess towards a stored one.
      const entry = byHash.get(hashSecret(secret))
      if (entry === undefined) return { ok: false, reason: loaded ? 'unknown' : 'not-loaded' }
      if (entry.expiresAtMs !== null && entry.expiresAtMs <= nowMs) return { ok: false, reason: 'expired' }
      return { ok: true, token: entry.token }
    },

    list () {
      return records.map(publicToken)
    },

    waitFor (e, g, timeoutMs) {
      if (reached(e, g)) return Promise.resolve(true)
      return new Promise((resolve) => {
        const done = (ok: boolean): void => {
          clearTimeout(timer)
          waiters.delete(check)
          resolve(ok)
        }
        const check = (): void => { if (reached(e, g)) done(true) }
        const timer = setTimeout(() => done(false), timeoutMs)
        waiters.add(check)
      })
    }
  }
  return table
}
