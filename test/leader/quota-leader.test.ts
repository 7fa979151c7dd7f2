// Quotas through the real leader, on both backends: writes sent together from a scripted gateway
// land in one batch, and the leader counts the batch's own registrations (exactly the quota is
// admitted); a takeover counts what is stored.
import { beforeAll, expect, it } from 'vitest'
import { context } from 'zeromq'
import type { WriteOp } from '../../server/protocol/messages.js'
import { describeWithDatabase, type Backend } from '../helpers/postgres.js'
import { useLocalLeaders } from './local-leader.js'

beforeAll(() => { context.blocky = false })

const SPEC = { host: '127.0.0.1', port: 8080, protocol: 'http' as const, check: { type: 'ttl' as const, ttlMs: 60_000 } }
const register = (service: string, id: string): WriteOp => ({ type: 'register', service, id, spec: SPEC })

describeWithDatabase('leader: provider quotas', (backend: Backend) => {
  const { start } = useLocalLeaders(backend, { quotas: { maxProvidersPerService: 4, maxProviders: 6 } })

  it('admits exactly the quota from writes that arrive together, and counts what is stored after a takeover', async () => {
    const first = await start()
    const results = await Promise.all(Array.from({ length: 10 }, async (_, i) => await first.gw.write(register('a', `a-${i}`))))
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 201, 201, 201, 429, 429, 429, 429, 429, 429])
    expect(results.filter((r) => !r.ok).every((r) => !r.ok && r.code === 'ROSTER_ERR_QUOTA_SERVICE')).toBe(true)
    const ids = ['b-1', 'b-2', 'b-3']
    const more = await Promise.all(ids.map(async (id) => await first.gw.write(register('b', id))))
    expect(more.map((r) => r.statusCode).sort()).toEqual([201, 201, 429])
    expect(more.find((r) => !r.ok)).toMatchObject({ code: 'ROSTER_ERR_QUOTA_TOTAL' })

    await first.leader.stop()
    const second = await start(first.bind)
    expect((await second.gw.write(register('c', 'c-1')))).toMatchObject({ ok: false, statusCode: 429, code: 'ROSTER_ERR_QUOTA_TOTAL' })
    const admitted = ids.filter((_, i) => more[i]?.ok === true)
    expect((await second.gw.write({ type: 'deregister', service: 'b', id: admitted[0] as string }))).toMatchObject({ ok: true })
    expect((await second.gw.write(register('c', 'c-1')))).toMatchObject({ ok: true, statusCode: 201 })
  })
})
