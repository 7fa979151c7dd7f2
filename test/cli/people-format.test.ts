// The people commands' pure core (server/cli/people-format.ts): what a terminal is allowed to
// receive, with colour on and off, and the JSON that must mean exactly what the API sent.
import { describe, expect, it } from 'vitest'
import type { Provider } from '../../client/index.js'
import { jsonLine, printable } from '../../server/common/printable.js'
import { age, providersTable, watchLine } from '../../server/cli/people-format.js'

const NOW = Date.parse('2026-01-01T12:00:00.000Z')
const provider = (over: Partial<Provider>): Provider => ({
  id: 'p-1', service: 's', host: '10.0.0.1', port: 80, protocol: 'http', heartbeatIntervalMs: 1000, tags: [], meta: {},
  state: 'up', stateSince: '2026-01-01T11:59:00.000Z', lastSeen: '2026-01-01T11:59:57.000Z', revision: 3, ...over
})

describe('printable', () => {
  it('turns every control, separator and bidi character into a visible \\u escape, and leaves other text alone', () => {
    expect(printable('a\u001b[2Jb\u0007c\u009bd\u202ee\u2028f\tg\nh')).toBe('a\\u001b[2Jb\\u0007c\\u009bd\\u202ee\\u2028f\\u0009g\\u000ah')
    expect(printable('grüße 東京 🚀 a=b')).toBe('grüße 東京 🚀 a=b')
  })
})

describe('jsonLine', () => {
  it('escapes what JSON.stringify leaves raw, and parses back to the same value', () => {
    const value = { reason: 'x\u001b[2J\u009b1m\u202e\u2028y', n: 1 }
    const line = jsonLine(value)
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u202e]/)
    expect(JSON.parse(line)).toEqual(value)
  })
})

describe('providersTable', () => {
  const rows = [provider({}), provider({ id: 'p-22', state: 'down', reason: 'check-failed', detail: 'HTTP 503', lastSeen: null, tags: ['a', 'b'] })]

  it('aligns the columns and colours only the state when asked to', () => {
    const plain = providersTable(rows, { colour: false, now: NOW })
    expect(plain.split('\n')).toEqual([
      'ID     STATE   ADDRESS       PROTOCOL   REASON                   LAST SEEN   TAGS',
      'p-1    up      10.0.0.1:80   http       -                        3s ago      -',
      'p-22   down    10.0.0.1:80   http       check-failed: HTTP 503   never       a,b'
    ])
    const coloured = providersTable(rows, { colour: true, now: NOW })
    expect(coloured).toContain('\u001b[32mup\u001b[0m      10.0.0.1:80')
    expect(coloured).toContain('\u001b[31mdown\u001b[0m    10.0.0.1:80')
    // Without the colour codes, the same text: colour never shifts a column.
    expect(coloured.replace(/\u001b\[\d+m/g, '')).toBe(plain)
  })

  it('escapes hostile tags and reasons in their cells', () => {
    const text = providersTable([provider({ tags: ['\u001b]0;t\u0007'], state: 'maintenance', reason: '\u001b[2J' })], { colour: true, now: NOW })
    expect(text.replace(/\u001b\[(36|0)m/g, '')).not.toContain('\u001b')
    expect(text).toContain('\\u001b]0;t\\u0007')
  })
})

describe('watchLine and age', () => {
  it('one line per message', () => {
    expect(watchLine({ type: 'snapshot', revision: 7, providers: [provider({}), provider({ id: 'p-2', state: 'down' })] }, { colour: false, now: NOW }))
      .toBe('7 snapshot 2 providers, 1 up')
    expect(watchLine({ type: 'snapshot', revision: 9, reset: true, providers: [] }, { colour: false, now: NOW })).toBe('9 snapshot (reset) 0 providers, 0 up')
    expect(watchLine({ type: 'event', revision: 8, event: 'down', provider: provider({ state: 'down', reason: 'disconnected' }) }, { colour: true, now: NOW }))
      .toBe('8 down s/p-1 \u001b[31mdown\u001b[0m disconnected')
  })

  it('says how long ago in the largest whole unit', () => {
    expect([0, 59_999, 60_000, 3_599_999, 3_600_000, 172_800_000].map((ms) => age(NOW - ms, NOW))).toEqual(['0s ago', '59s ago', '1m ago', '59m ago', '1h ago', '2d ago'])
  })
})
