// The target rule shared by the gateway and the worker (server/protocol/targets.ts): parsing
// --allow-targets, hostile spellings included, matching resolved addresses, and Roster's own
// ports. Pure: no lookups here; test/e2e/targets.test.ts runs it with real DNS and processes.
import { describe, expect, it } from 'vitest'
import {
  endpointTarget, firstOutside, leaderReservedPorts, notAllowedDetail, parseAllowTargets, reservedHit
} from '../../server/protocol/targets.js'

describe('parseAllowTargets', () => {
  it('reads IPv4 and IPv6 ranges and bare addresses; any or empty is no restriction', () => {
    expect(parseAllowTargets(undefined)).toBeNull()
    expect(parseAllowTargets('')).toBeNull()
    expect(parseAllowTargets('any')).toBeNull()
    const a = parseAllowTargets(' 10.0.0.0/8, fd00::/8 ,192.168.1.7,::1')
    expect(a?.ranges).toEqual(['10.0.0.0/8', 'fd00::/8', '192.168.1.7/32', '::1/128'])
  })

  it.each([
    ['10.0.0.0/33'], ['::/129'], ['10.0.0.0/-1'], ['10.0.0.0/'], ['10.0.0.0/8/8'], ['10.0.0/8'],
    ['300.1.1.1/8'], ['example.com/8'], ['localhost'], ['10.0.0.0/8,'], [',10.0.0.0/8'], ['any,10.0.0.0/8'],
    ['10.0.0.0/0x8'], ['10.0.0.0/ 8'], ['\u0000'], ['10.0.0.0/8\n'.repeat(2)], ['x'.repeat(10_000)]
  ])('refuses %j, naming the flag', (value) => {
    expect(() => parseAllowTargets(value)).toThrow(/^--allow-targets must be any or a comma-separated list of CIDR ranges/)
  })
})

describe('firstOutside', () => {
  const allow = parseAllowTargets('127.0.0.0/8,10.0.0.0/8,fd00::/8')!

  it('every address must be inside', () => {
    expect(firstOutside(allow, ['127.0.0.1', '10.200.3.4', 'fd00::1'])).toBeNull()
    expect(firstOutside(allow, ['127.0.0.1', '192.168.0.1'])).toBe('192.168.0.1')
    expect(firstOutside(allow, ['::1'])).toBe('::1')
    expect(firstOutside(allow, ['fe80::1'])).toBe('fe80::1')
  })

  it('an IPv4-mapped IPv6 address is judged as the IPv4 address it reaches', () => {
    expect(firstOutside(allow, ['::ffff:127.0.0.1'])).toBeNull()
    expect(firstOutside(allow, ['::ffff:192.168.0.1'])).toBe('::ffff:192.168.0.1')
    const v4only = parseAllowTargets('192.168.0.0/16')!
    expect(firstOutside(v4only, ['::ffff:10.0.0.1'])).toBe('::ffff:10.0.0.1')
  })

  it('anything that is not an address is outside', () => {
    expect(firstOutside(allow, ['localhost'])).toBe('localhost')
    expect(firstOutside(allow, [''])).toBe('')
  })

  it('says what is outside and what is allowed', () => {
    expect(notAllowedDetail('db.internal', '192.168.0.1', allow))
      .toBe('target not allowed: db.internal (192.168.0.1) is outside the allowed targets 127.0.0.0/8,10.0.0.0/8,fd00::/8 (--allow-targets)')
  })
})

describe("Roster's own ports", () => {
  const reserved = leaderReservedPorts(['tcp://10.0.0.9:7071', 'tcp://leader-b:7081'], (h) => (h === 'leader-b' ? ['10.0.0.10'] : [h]))

  it('are the ROUTER and PUB ports on loopback, the unspecified address and the candidate hosts', () => {
    for (const address of ['127.0.0.1', '127.9.9.9', '0.0.0.0', '::1', '::', '::ffff:127.0.0.1', '10.0.0.9']) {
      expect(reservedHit(reserved, address, 7071)?.what, address).toMatch(/ROUTER port \(tcp:\/\/10.0.0.9:7071\)/)
      expect(reservedHit(reserved, address, 7072)?.what, address).toMatch(/event \(PUB\) port/)
    }
    expect(reservedHit(reserved, '10.0.0.10', 7082)?.what).toMatch(/PUB.*leader-b:7081/)
  })

  it('other hosts and other ports are not reserved', () => {
    expect(reservedHit(reserved, '10.0.0.11', 7071)).toBeNull()
    expect(reservedHit(reserved, '127.0.0.1', 7073)).toBeNull()
    expect(reservedHit(reserved, '10.0.0.9', 7081)).toBeNull()
  })

  it('endpointTarget takes brackets off IPv6 literals', () => {
    expect(endpointTarget('tcp://[::1]:9100')).toEqual({ host: '::1', port: 9100 })
    expect(endpointTarget('tcp://localhost:1')).toEqual({ host: 'localhost', port: 1 })
  })
})
