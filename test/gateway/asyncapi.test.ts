// The change feed's AsyncAPI document (server/gateway/asyncapi.ts): served as committed, valid
// under @asyncapi/parser, its examples valid under its own schemas, the same registry schemas as
// the OpenAPI document; and, against a real gateway with real WebSocket clients, the messages,
// refused upgrades and close codes that only a gateway's own bounds can provoke, each checked
// against the document. test/e2e/feed-asyncapi.test.ts covers the rest (every event kind, auth,
// 1001 at shutdown) with the whole stack.
import { readFile } from 'node:fs/promises'
import { Parser } from '@asyncapi/parser'
import { describe, expect, it } from 'vitest'
import { buildGateway } from '../../server/gateway/app.js'
import { createReplica } from '../../server/gateway/replica.js'
import { WatchCloseCode } from '../../server/gateway/watch-hub.js'
import { waitFor } from '../../harness/wait-for.js'
import { feedValidators, readFeedDocument, DOCUMENT_URL } from './feed-document.js'
import { applyAll, history, noLeader, replicaWithHistory, useWatchGateway, type WatchClient } from './helpers.js'

const { gateway, open } = useWatchGateway()

describe('the feed\'s AsyncAPI document', () => {
  it('is served at /asyncapi.json exactly as committed in openapi/asyncapi.json (run `npm run asyncapi` after changing the feed)', async () => {
    const app = await buildGateway({ replica: createReplica(), leader: noLeader() })
    try {
      const res = await app.inject({ url: '/asyncapi.json' })
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8')
      expect(res.json()).toEqual(JSON.parse(await readFile(DOCUMENT_URL, 'utf8')))
      // Hidden from the REST API's document, like /openapi.json.
      const openapi = (await app.inject({ url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>()
      expect(Object.keys(openapi.paths)).not.toContain('/asyncapi.json')
    } finally {
      await app.close()
    }
  })

  it('is a valid AsyncAPI 3 document: @asyncapi/parser reports no diagnostic at all', async () => {
    const { document, diagnostics } = await new Parser().parse(await readFile(DOCUMENT_URL, 'utf8'))
    expect(diagnostics.map((d) => `${d.severity} ${d.code} ${d.path.join('.')}: ${d.message}`)).toEqual([])
    expect(document?.version()).toMatch(/^3\./)
    expect(document?.channels().all().map((c) => c.address())).toEqual(['/v1/watch'])
    expect(document?.operations().all().map((o) => [o.action(), o.messages().all().map((m) => m.name())])).toEqual([['send', ['snapshot', 'event']]])
  })

  it('has examples that its own message schemas accept, and schemas that reject what the feed never sends', async () => {
    const doc = await readFeedDocument()
    const v = feedValidators(doc)
    const examples = Object.values(doc.components.messages).flatMap((m) => m.examples ?? [])
    expect(examples.length).toBeGreaterThanOrEqual(3)
    for (const e of examples) expect(v.message(e.payload), e.name).toEqual([])
    const good = examples.find((e) => e.name === 'down')?.payload as Record<string, any>
    expect(v.message({ ...good, event: 'exploded' })).not.toEqual([])
    expect(v.message({ ...good, provider: { ...good.provider, state: 'sideways' } })).not.toEqual([])
    expect(v.message({ ...good, extra: 1 })).toEqual(['/extra is not declared by the document'])
    expect(v.message({ type: 'hello' })).toEqual(['no message of type hello in the document'])
  })

  it('uses the same Provider, Check and Error as the OpenAPI document', async () => {
    const doc = await readFeedDocument()
    const openapi = JSON.parse(await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as FeedDocument['components']
    type Obj = { required?: string[], properties?: Record<string, { description?: string }>, oneOf?: Obj[], enum?: string[] }
    const a = doc.components.schemas as Record<string, Obj>
    const o = (openapi as unknown as { components: { schemas: Record<string, Obj> } }).components.schemas
    // @fastify/swagger rewrites some keywords for OpenAPI (const as enum), so the shapes are
    // compared: the same fields, the same required ones, the same words.
    const shape = (s: Obj | undefined): unknown => ({
      required: s?.required,
      properties: Object.fromEntries(Object.entries(s?.properties ?? {}).map(([k, p]) => [k, p.description])),
      oneOf: s?.oneOf?.map(shape),
      enum: s?.enum
    })
    const shared = ['Check', 'HttpCheck', 'Provider', 'ProviderProtocol', 'ProviderState', 'TcpCheck', 'TtlCheck']
    for (const name of shared) expect(shape(a[name]), name).toEqual(shape(o[name]))
    expect(a.Error).toEqual(o.Error)
    expect(Object.keys(a).sort()).toEqual([...shared, 'Error', 'WatchEvent', 'WatchSnapshot'].sort())
  })

  it('lists every close code the hub sends, with when and what a client does', async () => {
    const codes = (await readFeedDocument()).channels.watch['x-close-codes']
    for (const code of Object.values(WatchCloseCode)) {
      expect(codes[String(code)], String(code)).toMatchObject({ when: expect.any(String), client: expect.any(String) })
    }
    // Bad queries and tokens are refused before the upgrade: the feed never closes with 1008.
    expect(codes['1008']).toBeUndefined()
  })
})

type FeedDocument = Awaited<ReturnType<typeof readFeedDocument>>

describe('what a gateway sends, checked against the document', () => {
  /** Every message the client received conforms; its close code and reason are listed. */
  async function conforms (c: WatchClient, close?: number): Promise<void> {
    const v = feedValidators(await readFeedDocument())
    for (const m of c.messages) expect(v.message(m), JSON.stringify(m).slice(0, 200)).toEqual([])
    if (close !== undefined) {
      const { code, reason } = await c.closed
      expect(code).toBe(close)
      expect(v.closeCode(code, reason)).toEqual([])
    }
  }

  it('a snapshot, events, and a reset snapshot for a since older than the retained history', async () => {
    // The ring holds the last 5 of 40 changes and no leader can supply older ones.
    const { replica } = replicaWithHistory(40, 5, 40)
    const { base } = await gateway({ replica })
    const fresh = open(base, '?service=orders')
    const resumed = open(base, '?since=37')
    const tooOld = open(base, '?since=3')
    await fresh.received(1)
    await resumed.received(3)
    await tooOld.received(1)
    applyAll(replica, history(41, 3, { width: 2 }))
    await fresh.received(4)
    await resumed.received(6)
    await tooOld.received(4)
    expect(fresh.messages[0]).toMatchObject({ type: 'snapshot', revision: 40 })
    expect(resumed.messages[0]).toMatchObject({ type: 'event', revision: 38 })
    expect(tooOld.messages[0]).toMatchObject({ type: 'snapshot', reset: true, revision: 40 })
    for (const c of [fresh, resumed, tooOld]) await conforms(c)
  })

  it('4008 with its resume hint for a client that stops reading', async () => {
    const replica = createReplica()
    replica.loadSnapshot(0, [])
    const { app, base } = await gateway({ replica, watch: { maxBufferedBytes: 256 * 1024 } })
    const slow = open(base)
    await slow.received(1)
    slow.ws.pause()
    // ~15 KB per event: the loopback buffers fill, then the server's 256 KiB bound trips. The
    // hub's close is seen on the server's side of the socket; the client reads it once it resumes.
    const meta = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, 'x'.repeat(500)]))
    let revision = 0
    const closing = (): boolean => [...app.websocketServer.clients].every((s) => s.readyState !== s.OPEN)
    for (let batch = 0; batch < 60 && !closing(); batch++) {
      applyAll(replica, history(revision + 1, 100, { meta, width: 50 }))
      revision += 100
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(closing()).toBe(true)
    slow.ws.resume()
    await conforms(slow, 4008)
  })

  it('1006 for a client that stops answering pings (no close frame), which the document lists', async () => {
    const replica = createReplica()
    replica.loadSnapshot(0, [])
    const { app, base } = await gateway({ replica, watch: { pingIntervalMs: 50 } })
    const silent = open(base)
    await silent.received(1)
    silent.ws.pause()
    await waitFor(() => app.websocketServer.clients.size === 0, { what: 'the gateway dropping the silent client' })
    silent.ws.resume()
    await conforms(silent, 1006)
  })

  it('1009 and 1007 for a client that sends what the feed does not read', async () => {
    const replica = createReplica()
    replica.loadSnapshot(0, [])
    const { base } = await gateway({ replica })
    const big = open(base)
    const garbled = open(base)
    await big.received(1)
    await garbled.received(1)
    big.ws.send('x'.repeat(5000))
    garbled.ws.send(Buffer.from([0x68, 0xff, 0xfe]), { binary: false })
    await conforms(big, 1009)
    await conforms(garbled, 1007)
  })

  it('refuses upgrades with statuses the document lists and bodies its Error schema accepts', async () => {
    const v = feedValidators(await readFeedDocument())
    const replica = createReplica()
    const { base } = await gateway({ replica })
    // No snapshot yet: 503.
    const early = await open(base).refused
    expect(early.statusCode).toBe(503)
    expect(v.upgradeError(early.statusCode, JSON.parse(early.body))).toEqual([])
    replica.loadSnapshot(0, [])
    for (const query of ['?since=-1', '?service=Bad!', '?since=1&since=2', '?other=1']) {
      const refused = await open(base, query).refused
      expect(refused.statusCode, query).toBe(400)
      expect(v.upgradeError(refused.statusCode, JSON.parse(refused.body)), query).toEqual([])
    }
    const plain = await fetch(`${base.replace(/^ws/, 'http')}/v1/watch`)
    expect(plain.status).toBe(426)
    expect(v.upgradeError(plain.status, await plain.json())).toEqual([])
  })
})
