// The dashboard's pure core (server/gateway/ui/model.js), run in Node: the browser test covers
// the page end to end, this pins the rules it relies on (a frame it cannot use is refused with a
// message naming the field, an old event changes nothing, a snapshot replaces everything, down
// first, bounded log and backoff).
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { provider } from './helpers.js'

// A plain browser module without type declarations: imported through a variable so that tsc
// (no allowJs) takes it as it is; the interface says what this test uses of it.
const MODEL_MODULE = '../../server/gateway/ui/model.js'
interface Model { revision: number | null, providers: Map<string, any>, log: any[] }
const m = await import(MODEL_MODULE) as {
  createModel: () => Model
  parseFrame: (text: string) => any
  applyFrame: (model: Model, frame: any, now: number) => boolean
  serviceCounts: (model: Model) => Array<{ name: string, total: number, counts: Record<string, number> }>
  selectProviders: (model: Model, filter: { service: string | null, state: string | null, protocol: string | null, text: string }) => any[]
  ago: (iso: string | null, now: number) => string
  backoffMs: (attempt: number, random: number) => number
  LOG_LIMIT: number
}

const ALL = { service: null, state: null, protocol: null, text: '' }

describe('the dashboard model', () => {
  it('refuses frames it cannot use, naming the field', () => {
    const cases: Array<[string, RegExp]> = [
      ['null', /must be a JSON object/],
      ['{"type":"event","revision":-1}', /frame.revision must be a non-negative integer/],
      ['{"type":"snapshot","revision":1}', /snapshot.providers must be an array/],
      ['{"type":"snapshot","revision":1,"providers":[{"id":"a","service":"s"}]}', /snapshot.providers\[0\].state must be a string/],
      ['{"type":"event","revision":2,"event":"exploded","provider":{}}', /event.event must be one of/],
      ['{"type":"event","revision":2,"event":"up","provider":{"id":1,"service":"s","state":"up"}}', /event.provider.id must be a string/],
      ['{"type":"hello","revision":2}', /frame.type must be snapshot or event/]
    ]
    for (const [text, message] of cases) expect(() => m.parseFrame(text), text).toThrow(message)
  })

  it('never throws anything but an Error on arbitrary text (whole Unicode)', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.json()), (text) => {
      try {
        m.parseFrame(text)
      } catch (err) {
        expect(err).toBeInstanceOf(Error)
      }
    }))
  })

  it('applies events in order, ignores old ones, and is replaced by a snapshot', () => {
    const model = m.createModel()
    m.applyFrame(model, { type: 'snapshot', revision: 5, providers: [provider({ id: 'a', state: 'up' }), provider({ id: 'b', service: 'pay', state: 'up' })] }, 0)
    expect(m.applyFrame(model, { type: 'event', revision: 6, event: 'down', provider: provider({ id: 'a', state: 'down', reason: 'disconnected' }) }, 1)).toBe(true)
    expect(m.applyFrame(model, { type: 'event', revision: 6, event: 'up', provider: provider({ id: 'a', state: 'up' }) }, 2)).toBe(false)
    expect(m.applyFrame(model, { type: 'event', revision: 4, event: 'deregistered', provider: provider({ id: 'b', service: 'pay' }) }, 3)).toBe(false)
    expect(model.providers.get('a').state).toBe('down')
    expect(model.log.map((e) => [e.revision, e.event, e.id, e.reason])).toEqual([[6, 'down', 'a', 'disconnected']])
    m.applyFrame(model, { type: 'event', revision: 7, event: 'deregistered', provider: provider({ id: 'b', service: 'pay' }) }, 4)
    expect([...model.providers.keys()]).toEqual(['a'])
    // A reset snapshot may go back in revisions (another registry): it replaces everything.
    m.applyFrame(model, { type: 'snapshot', reset: true, revision: 2, providers: [provider({ id: 'z', state: 'pending' })] }, 5)
    expect(model.revision).toBe(2)
    expect([...model.providers.keys()]).toEqual(['z'])
    expect(m.applyFrame(model, { type: 'event', revision: 3, event: 'up', provider: provider({ id: 'z', state: 'up' }) }, 6)).toBe(true)
  })

  it('counts by state per service, lists down first, filters, and bounds its log', () => {
    const model = m.createModel()
    m.applyFrame(model, {
      type: 'snapshot',
      revision: 1,
      providers: [
        provider({ id: 'o-1', state: 'up', tags: ['blue'] }),
        provider({ id: 'o-2', state: 'down', protocol: 'rpc' }),
        provider({ id: 'p-1', service: 'pay', state: 'maintenance', meta: { note: 'Kernel' } }),
        provider({ id: 'p-2', service: 'pay', state: 'pending' })
      ]
    }, 0)
    expect(m.serviceCounts(model)).toEqual([
      { name: 'orders', total: 2, counts: { up: 1, down: 1, pending: 0, maintenance: 0 } },
      { name: 'pay', total: 2, counts: { up: 0, down: 0, pending: 1, maintenance: 1 } }
    ])
    expect(m.selectProviders(model, ALL).map((p) => p.id)).toEqual(['o-2', 'p-2', 'p-1', 'o-1'])
    expect(m.selectProviders(model, { ...ALL, service: 'pay' }).map((p) => p.id)).toEqual(['p-2', 'p-1'])
    expect(m.selectProviders(model, { ...ALL, protocol: 'rpc' }).map((p) => p.id)).toEqual(['o-2'])
    expect(m.selectProviders(model, { ...ALL, text: ' BLUE ' }).map((p) => p.id)).toEqual(['o-1'])
    expect(m.selectProviders(model, { ...ALL, text: 'note=kernel' }).map((p) => p.id)).toEqual(['p-1'])
    for (let r = 2; r < 2 + m.LOG_LIMIT + 50; r++) m.applyFrame(model, { type: 'event', revision: r, event: 'updated', provider: provider({ id: 'o-1' }) }, r)
    expect(model.log).toHaveLength(m.LOG_LIMIT)
    expect(model.log[0].revision).toBe(1 + m.LOG_LIMIT + 50)
  })

  it('says how long ago, and backs off from 0.25 s to 10 s with ±20 % jitter', () => {
    const now = Date.parse('2026-11-27T10:00:00.000Z')
    expect(m.ago('2026-11-27T09:59:58.600Z', now)).toBe('1 s')
    expect(m.ago('2026-11-27T09:55:00.000Z', now)).toBe('5 min')
    expect(m.ago('2026-11-27T07:00:00.000Z', now)).toBe('3 h')
    expect(m.ago('2026-11-20T10:00:00.000Z', now)).toBe('7 d')
    expect(m.ago(null, now)).toBe('')
    expect(m.ago('not a date', now)).toBe('')
    expect([0, 1, 2, 3, 4, 5, 6, 20].map((a) => m.backoffMs(a, 0.5))).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000])
    fc.assert(fc.property(fc.nat(1000), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, random) => {
      const ms = m.backoffMs(attempt, random)
      expect(ms).toBeGreaterThanOrEqual(200)
      expect(ms).toBeLessThanOrEqual(12_000)
    }))
  })
})
