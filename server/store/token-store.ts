// The tokens table: every API token's id, name, scopes, expiry and the SHA-256 of its secret
// (never the secret: server/common/token-secret.ts). The leader is its only writer, and every
// write is fenced by the leader's epoch exactly as the registry's commits are, so a deposed
// leader can neither create nor revoke a token.
import type { TokenRecord } from '../protocol/token-model.js'
import { Errors } from '../protocol/error-codes.js'
import type { Db } from './db.js'
import { FencedError } from './registry-store.js'

/** A token whose id or secret hash is already stored. */
export class TokenConflictError extends Error {
  readonly code = Errors.tokenConflict.code
  constructor (message = 'a token with this id or secret already exists') {
    super(message)
    this.name = 'TokenConflictError'
  }
}

export interface TokenStore {
  /** Every stored token, oldest first. */
  list(): Promise<TokenRecord[]>
  /** Stores a token; FencedError when `epoch` is no longer current, TokenConflictError on a
   *  duplicate id or hash. */
  create(epoch: number, token: TokenRecord): Promise<void>
  /** Deletes a token; false when there is none with this id. FencedError as for create. */
  revoke(epoch: number, id: string): Promise<boolean>
}

interface TokenRow { id: string, name: string, scopes: string[], secret_hash: string, created_at: Date, expires_at: Date | null }

// The fence reads the meta row FOR SHARE: a concurrent claimEpoch (an UPDATE of that row) waits
// for this statement's transaction, so a new leader's load sees the token; and if claimEpoch
// committed first, the row is re-read, its epoch no longer matches, and nothing is written.
const FENCE = 'select 1 from roster_meta where id = 1 and epoch = $1 for share'

export function createTokenStore (db: Db): TokenStore {
  async function fenced (epoch: number): Promise<never> {
    const [meta] = await db.query<{ epoch: number }>('select epoch from roster_meta where id = 1')
    throw new FencedError(`epoch ${epoch} is no longer current (now ${meta?.epoch ?? 'unknown'})`)
  }

  return {
    async list () {
      const rows = await db.query<TokenRow>(
        'select id, name, scopes, secret_hash, created_at, expires_at from tokens order by created_at, id'
      )
      return rows.map((r) => ({
        id: r.id,
        name: r.name,
        scopes: r.scopes,
        secretHash: r.secret_hash,
        createdAt: r.created_at.toISOString(),
        expiresAt: r.expires_at === null ? null : r.expires_at.toISOString()
      }))
    },

    async create (epoch, token) {
      let rows: unknown[]
      try {
        rows = await db.query(`
          with fence as (${FENCE})
          insert into tokens (id, name, scopes, secret_hash, created_at, expires_at)
          select $2, $3, $4::jsonb, $5, $6, $7 where exists (select 1 from fence)
          returning id`,
        [epoch, token.id, token.name, JSON.stringify(token.scopes), token.secretHash, token.createdAt, token.expiresAt])
      } catch (err) {
        if ((err as { code?: unknown }).code === '23505') throw new TokenConflictError()
        throw err
      }
      if (rows.length === 0) await fenced(epoch)
    },

    async revoke (epoch, id) {
      const rows = await db.query<{ fenced: boolean, deleted: number }>(`
        with fence as (${FENCE}),
        doomed as (delete from tokens where id = $2 and exists (select 1 from fence) returning id)
        select not exists (select 1 from fence) as fenced, (select count(*) from doomed)::int as deleted`,
      [epoch, id])
      if (rows[0]?.fenced !== false) await fenced(epoch)
      return (rows[0]?.deleted ?? 0) > 0
    }
  }
}
