// The tokens table on Postgres: what the leader relies on (writes fenced by
// its epoch, a duplicate refused, a revoke of an unknown id reported) and that only the hash of
// a secret is ever stored.
import { describe, expect, it } from 'vitest'
import type { TokenRecord } from '../../server/protocol/token-model.js'
import { createRegistryStore, FencedError } from '../../server/store/registry-store.js'
import { createTokenStore, TokenConflictError } from '../../server/store/token-store.js'
import { hashSecret, newSecret, newTokenId } from '../../server/common/token-secret.js'
import { describeWithDatabase } from '../helpers/postgres.js'

function token (overrides: Partial<TokenRecord> = {}): TokenRecord {
  return {
    id: newTokenId(),
    name: 'ci',
    scopes: ['read', 'write:payments-*'],
    secretHash: hashSecret(newSecret()),
    createdAt: '2026-11-27T10:00:00.000Z',
    expiresAt: null,
    ...overrides
  }
}

describeWithDatabase('token store', (backend) => {
  it('stores, lists and revokes tokens, fenced by the epoch', async () => {
    const epoch = await createRegistryStore(backend.db).claimEpoch()
    const tokens = createTokenStore(backend.db)
    const a = token({ name: 'a' })
    const b = token({ name: 'b', createdAt: '2026-11-27T11:00:00.000Z', expiresAt: '2027-01-01T00:00:00.000Z' })
    await tokens.create(epoch, a)
    await tokens.create(epoch, b)
    expect(await tokens.list()).toEqual([a, b])

    await expect(tokens.create(epoch, token({ id: a.id }))).rejects.toBeInstanceOf(TokenConflictError)
    await expect(tokens.create(epoch, token({ secretHash: a.secretHash }))).rejects.toBeInstanceOf(TokenConflictError)
    // A deposed leader (an older epoch) changes nothing.
    await expect(tokens.create(epoch - 1, token())).rejects.toBeInstanceOf(FencedError)
    await expect(tokens.revoke(epoch - 1, a.id)).rejects.toBeInstanceOf(FencedError)
    expect(await tokens.list()).toHaveLength(2)

    expect(await tokens.revoke(epoch, a.id)).toBe(true)
    expect(await tokens.revoke(epoch, a.id)).toBe(false)
    expect(await tokens.list()).toEqual([b])
  })

  it('refuses anything but a hex SHA-256 as the stored secret', async () => {
    const epoch = await createRegistryStore(backend.db).claimEpoch()
    await expect(createTokenStore(backend.db).create(epoch, token({ secretHash: newSecret() }))).rejects.toThrow(/secret_hash/)
  })
})

describe('token secrets', () => {
  it('are 32 random bytes behind a prefix, and hash to 64 hex digits', () => {
    const s = newSecret()
    expect(s).toMatch(/^roster_[A-Za-z0-9_-]{43}$/)
    expect(newSecret()).not.toBe(s)
    expect(hashSecret(s)).toMatch(/^[0-9a-f]{64}$/)
    expect(hashSecret(s)).toBe(hashSecret(s))
  })
})
