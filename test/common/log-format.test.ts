// The pretty log line (server/common/log-format.ts): what an operator's terminal receives for a
// record pino wrote, whatever text a client managed to get into its fields.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { prettyLogLine } from '../../server/common/log-format.js'

const TIME = new Date(2026, 10, 27, 12, 14, 21, 526).getTime() // local time, as the line shows it
/** Anything a terminal would act on: C0, DEL, C1, the line separators and bidi controls. */
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/

describe('prettyLogLine', () => {
  it('writes time, level, role, message and key=value fields on one line', () => {
    const line = prettyLogLine({ level: 30, time: TIME, pid: 1, hostname: 'vm', role: 'leader', epoch: 1, bind: 'tcp://127.0.0.1:7071', applied: ['0001_registry'], msg: 'active leader' }, { colour: false })
    expect(line).toBe('12:14:21.526 INFO  leader: active leader epoch=1 bind=tcp://127.0.0.1:7071 applied=["0001_registry"]\n')
  })

  it('quotes a value with spaces, and puts an error\'s message inline and its stack below', () => {
    const err = { type: 'Error', message: 'connect ECONNREFUSED', code: 'ECONNREFUSED', stack: 'Error: connect ECONNREFUSED\n    at a (x.js:1:1)\n    at b (y.js:2:2)' }
    const line = prettyLogLine({ level: 50, time: TIME, role: 'gateway', storage: 'embedded Postgres in /tmp/a b', err, msg: 'request failed' }, { colour: false })
    expect(line.split('\n')).toEqual([
      '12:14:21.526 ERROR gateway: request failed err="connect ECONNREFUSED" code=ECONNREFUSED storage="embedded Postgres in /tmp/a b"',
      '    at a (x.js:1:1)',
      '    at b (y.js:2:2)',
      ''
    ])
  })

  it('colours warnings and errors only when asked to', () => {
    expect(prettyLogLine({ level: 40, time: TIME, msg: 'w' }, { colour: true })).toBe('12:14:21.526 \u001b[33mWARN \u001b[0m w\n')
    expect(prettyLogLine({ level: 40, time: TIME, msg: 'w' }, { colour: false })).toBe('12:14:21.526 WARN  w\n')
    expect(prettyLogLine({ level: 30, time: TIME, msg: 'i' }, { colour: true })).toBe('12:14:21.526 INFO  i\n')
  })

  it('escapes every control, separator and bidi character a client may have put in any field', () => {
    fc.assert(fc.property(
      fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }),
      (msg, key, text, stackLine) => {
        const record = { level: 20, time: TIME, role: text, msg, [key]: text, nested: { [key]: [text] }, err: { message: text, stack: `E\n${stackLine}` } }
        const out = prettyLogLine(record, { colour: false })
        expect(out.endsWith('\n')).toBe(true)
        expect(out.slice(0, -1)).not.toMatch(UNSAFE)
        // One line for the record, then one indented line per stack line: no field can start a line of its own.
        const lines = out.slice(0, -1).split('\n')
        expect(lines.length).toBe(1 + stackLine.split('\n').length)
        for (const l of lines.slice(1)) expect(l.startsWith('    ')).toBe(true)
      }
    ), { numRuns: 300 })
  })
})
