// Attributing a monitor event's address to the endpoint the worker connected to, in every
// spelling libzmq 4.3.5 uses for it (as given, resolved, IPv4-mapped). The real-socket case is
// in worker.test.ts ("reports a killed provider down … restarts on its endpoint").
import { describe, expect, it } from 'vitest'
import { silentLog } from '../../server/shared/log.js'
import { canonicalAddress, createEndpointAliases } from '../../server/worker/endpoint-aliases.js'
import { waitFor } from '../helpers/wait-for.js'

describe('endpoint aliases', () => {
  it('spells every address one way', () => {
    expect(canonicalAddress('tcp://127.0.0.1:9100')).toBe('tcp://127.0.0.1:9100')
    expect(canonicalAddress('tcp://[::ffff:127.0.0.1]:9100')).toBe('tcp://127.0.0.1:9100')
    expect(canonicalAddress('tcp://[::FFFF:10.0.0.5]:9100')).toBe('tcp://10.0.0.5:9100')
    expect(canonicalAddress('tcp://[0:0:0:0:0:0:0:1]:9100')).toBe('tcp://[::1]:9100')
    expect(canonicalAddress('tcp://[2001:DB8::0:1]:9100')).toBe('tcp://[2001:db8::1]:9100')
    expect(canonicalAddress('tcp://localhost:9100')).toBe('tcp://localhost:9100')
    expect(canonicalAddress('not an endpoint')).toBe('not an endpoint')
  })

  it('attributes the given, the resolved and the mapped form of a named endpoint', async () => {
    const aliases = createEndpointAliases({
      log: silentLog,
      lookup: async () => [{ address: '10.0.0.5', family: 4 }, { address: 'fd00::5', family: 6 }]
    })
    aliases.add('tcp://provider.example:9100')
    expect(aliases.resolve('tcp://provider.example:9100')).toEqual(['tcp://provider.example:9100'])
    await waitFor(() => aliases.resolve('tcp://10.0.0.5:9100').length === 1, { what: 'the lookup' })
    expect(aliases.resolve('tcp://[::ffff:10.0.0.5]:9100')).toEqual(['tcp://provider.example:9100'])
    expect(aliases.resolve('tcp://[fd00:0::5]:9100')).toEqual(['tcp://provider.example:9100'])
    expect(aliases.resolve('tcp://10.0.0.5:9101')).toEqual([])
  })

  it('attributes the mapped form of an IPv4 literal, to every endpoint sharing the address', () => {
    const aliases = createEndpointAliases({ log: silentLog, lookup: async () => [{ address: '127.0.0.1', family: 4 }] })
    aliases.add('tcp://127.0.0.1:9100')
    aliases.add('tcp://[::ffff:127.0.0.1]:9100')
    expect(aliases.resolve('tcp://[::ffff:127.0.0.1]:9100').sort()).toEqual(['tcp://127.0.0.1:9100', 'tcp://[::ffff:127.0.0.1]:9100'])
    aliases.remove('tcp://127.0.0.1:9100')
    expect(aliases.resolve('tcp://127.0.0.1:9100')).toEqual(['tcp://[::ffff:127.0.0.1]:9100'])
    aliases.remove('tcp://[::ffff:127.0.0.1]:9100')
    expect(aliases.resolve('tcp://127.0.0.1:9100')).toEqual([])
  })

  it('drops a lookup that finishes after its endpoint was removed', async () => {
    let finish: (v: Array<{ address: string, family: number }>) => void = () => {}
    const aliases = createEndpointAliases({ log: silentLog, lookup: async () => await new Promise((resolve) => { finish = resolve }) })
    aliases.add('tcp://gone.example:9100')
    aliases.remove('tcp://gone.example:9100')
    finish([{ address: '10.0.0.9', family: 4 }])
    await new Promise((resolve) => setImmediate(resolve))
    expect(aliases.resolve('tcp://10.0.0.9:9100')).toEqual([])
  })
})
