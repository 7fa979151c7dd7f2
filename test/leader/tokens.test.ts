// The leader's half of the tokens: it stores a gateway's TOKEN_WRITE (fenced, answered after the
// commit), announces each change in a BEAT at once, hands the list (hashes only) to TOKENS_REQ,
// loads it again at a takeover, and installs ROSTER_BOOTSTRAP_TOKEN as the admin token when
// there is none. Real leader, real ZeroMQ, real Postgres.
import { randomUUID } from 'node:crypto'
import { expect, it } from 'vitest'
import type { Body, TokenOp } from '../../server/protocol/messages.js'
import type { TokenRecord } from '../../server/protocol/token-model.js'
import { hashSecret, newSecret, newTokenId } from '../../server/common/token-secret.js'
import { createTokenStore } from '../../server/store/token-store.js'
import { encode } from '../../server/protocol/frames.js'
import { describeWithDatabase, type Backend } from '../helpers/postgres.js'
import { waitFor } from '../../harness/wait-for.js'
import { useLocalLeaders } from './local-leader.js'
import type { ScriptedFollower } from './scripted-follower.js'

function record (overrides: Partial<TokenRecord> = {}): TokenRecord {
  return { id: newTokenId(), name: 'ci', scopes: ['write:payments'], secretHash: hashSecret(newSecret()), createdAt: new Date().toISOString(), expiresAt: null, ...overrides }
}

async function tokenWrite (f: ScriptedFollower, op: TokenOp): Promise<Body<'TOKEN_RESULT'>> {
  const requestId = randomUUID()
  f.send('TOKEN_WRITE', { requestId, op })
  return (await f.next('TOKEN_RESULT', (b) => b.requestId === requestId)).body
}

async function tokenList (f: ScriptedFollower): Promise<Body<'TOKENS'>> {
  const requestId = randomUUID()
  f.send('TOKENS_REQ', { requestId })
  return (await f.next('TOKENS', (b) => b.requestId === requestId)).body
}

const BOOTSTRAP = 'a-bootstrap-secret-of-at-least-32-characters'

describeWithDatabase('leader: tokens', (backend: Backend) => {
  const { start } = useLocalLeaders(backend, { bootstrapToken: BOOTSTRAP })
  const plain = useLocalLeaders(backend)

  it('stores a token change, announces it in a BEAT at once, and lists hashes only', async () => {
    const { gw, feed } = await start()
    const before = await tokenList(gw)
    // The bootstrap token was installed at the takeover: admin, named bootstrap, its hash only.
    expect(before.tokens).toEqual([expect.objectContaining({ name: 'bootstrap', scopes: ['admin'], secretHash: hashSecret(BOOTSTRAP) })])
    expect(JSON.stringify(before)).not.toContain(BOOTSTRAP)

    const t = record()
    const from = feed.received.length
    const sentAt = Date.now()
    const created = await tokenWrite(gw, { type: 'create', token: t })
    expect(created.result).toEqual({ ok: true, statusCode: 201, generation: before.generation + 1 })
    // The BEAT that announces it comes right after the commit, not at the next 200 ms tick.
    const beat = await waitFor(() => feed.received.slice(from).find((m) => m.verb === 'BEAT' && (m.body as Body<'BEAT'>).tokens === before.generation + 1))
    expect(beat.at - sentAt).toBeLessThan(150)
    expect((await tokenList(gw)).tokens.map((x) => x.id)).toEqual([before.tokens[0]!.id, t.id])

    expect((await tokenWrite(gw, { type: 'create', token: { ...t, id: newTokenId() } })).result)
      .toMatchObject({ ok: false, statusCode: 409, code: 'ROSTER_ERR_TOKEN_CONFLICT' })
    expect((await tokenWrite(gw, { type: 'revoke', id: t.id })).result).toEqual({ ok: true, statusCode: 200, generation: before.generation + 2 })
    expect((await tokenWrite(gw, { type: 'revoke', id: t.id })).result).toMatchObject({ ok: false, statusCode: 404, code: 'ROSTER_ERR_TOKEN_NOT_FOUND' })
    expect((await tokenList(gw)).tokens.map((x) => x.name)).toEqual(['bootstrap'])
  })

  it('drops a TOKEN_WRITE that breaks the schema, and changes nothing', async () => {
    const { leader, gw } = await start()
    const bad = [
      { type: 'create', token: { ...record(), scopes: ['write:Payments'] } },
      { type: 'create', token: { ...record(), scopes: [] } },
      { type: 'create', token: { ...record(), secretHash: 'roster_not-a-hash' } },
      { type: 'create', token: { ...record(), name: 'x\u0000y' } },
      { type: 'revoke', id: '../etc' }
    ]
    const badBefore = leader.stats.badFrames
    for (const op of bad) gw.sendRaw([...encode('TOKEN_WRITE', { requestId: randomUUID(), op: op as TokenOp })])
    await waitFor(() => leader.stats.badFrames === badBefore + bad.length, { what: 'every bad TOKEN_WRITE counted' })
    expect((await tokenList(gw)).tokens).toHaveLength(1)
  })

  it('keeps the tokens across a takeover and installs no second bootstrap token', async () => {
    const first = await start()
    const t = record()
    await tokenWrite(first.gw, { type: 'create', token: t })
    await first.leader.stop()
    const second = await start()
    expect((await tokenList(second.gw)).tokens.map((x) => x.name)).toEqual(['bootstrap', 'ci'])
  })

  it('without a bootstrap secret, stores no admin token', async () => {
    const { gw } = await plain.start()
    expect((await tokenList(gw)).tokens).toEqual([])
    expect(await createTokenStore(backend.db).list()).toEqual([])
  })
})
