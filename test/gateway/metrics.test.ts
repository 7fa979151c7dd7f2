// The feed's metrics at GET /metrics (gateway/metrics.ts): clients connected, bytes buffered for
// them, and clients closed for lag, against a real gateway and real WebSocket clients, one of
// which stops reading until the gateway closes it with 4008.
import { describe, expect, it } from 'vitest'
import { createReplica } from '../../server/gateway/replica.js'
import { hasPrometheusParser, scrape } from '../helpers/prometheus.js'
import { NEEDS_PROMETHEUS_PARSER } from '../helpers/requirements.js'
import { waitFor } from '../../harness/wait-for.js'
import { applyAll, history, useWatchGateway } from './helpers.js'

const { gateway, open } = useWatchGateway()

describe('GET /metrics and the feed', () => {
  it('counts feed clients, their unsent bytes, and the client closed for falling behind', async ({ skip }) => {
    skip(!hasPrometheusParser, NEEDS_PROMETHEUS_PARSER)
    const replica = createReplica()
    replica.loadSnapshot(0, [])
    const { base } = await gateway({ replica, watch: { maxBufferedBytes: 1024 * 1024 } })
    const metricsUrl = `${base.replace(/^ws/, 'http')}/metrics`
    const fast = open(base)
    const stalled = open(base)
    for (const c of [fast, stalled]) await c.received(1)
    expect((await scrape(metricsUrl)).value('roster_gateway_feed_clients')).toBe(2)
    stalled.ws.pause()
    // ~15 KB per event: the stalled client's kernel buffers fill, then the gateway's, until its
    // 1 MiB bound closes it; steps of 5 events (75 KB) let a scrape see the bytes pile up.
    const meta = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, 'x'.repeat(500)]))
    let revision = 0
    let sawBuffered = false
    await waitFor(async () => {
      applyAll(replica, history(revision + 1, 5, { meta, width: 50 }))
      revision += 5
      await fast.received(1 + revision, 10_000)
      const s = await scrape(metricsUrl)
      if (s.value('roster_gateway_feed_buffered_bytes') > 0) sawBuffered = true
      return s.value('roster_gateway_feed_clients_closed_for_lag_total') === 1
    }, { timeoutMs: 30_000, what: 'the stalled client closed for lag' })
    stalled.ws.resume()
    expect((await stalled.closed).code).toBe(4008)
    expect(sawBuffered).toBe(true)
    const after = await scrape(metricsUrl)
    expect(after.value('roster_gateway_feed_clients')).toBe(1)
    expect(after.value('roster_gateway_replica_revision')).toBe(revision)
  })
})
