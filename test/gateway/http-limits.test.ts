import { describe, expect, it } from 'vitest'
import { defaultMaxConnections, FALLBACK_MAX_CONNECTIONS, parseOpenFilesLimit, readOpenFilesLimit, RESERVED_DESCRIPTORS } from '../../server/gateway/http-limits.js'

const LIMITS = [
  'Limit                     Soft Limit           Hard Limit           Units     ',
  'Max processes             63450                63450                processes ',
  'Max open files            20000                1048576              files     ',
  ''
].join('\n')

describe('the default connection cap', () => {
  it('reads the soft open-files limit, and nothing from text without one or with unlimited', () => {
    expect(parseOpenFilesLimit(LIMITS)).toBe(20_000)
    expect(parseOpenFilesLimit(LIMITS.replace('20000  ', 'unlimited'))).toBeNull()
    expect(parseOpenFilesLimit('')).toBeNull()
  })

  it('keeps RESERVED_DESCRIPTORS for the rest of the process, with a floor and a fallback', () => {
    expect(defaultMaxConnections(20_000)).toBe(20_000 - RESERVED_DESCRIPTORS)
    expect(defaultMaxConnections(100)).toBe(64)
    expect(defaultMaxConnections(null)).toBe(FALLBACK_MAX_CONNECTIONS)
  })

  it('reads this process\'s limit on Linux', () => {
    const limit = readOpenFilesLimit()
    if (process.platform === 'linux') expect(limit).toBeGreaterThan(RESERVED_DESCRIPTORS)
  })
})
