import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { buildGateway } from '../../server/gateway/app.js'
import { createReplica } from '../../server/gateway/replica.js'
import { noLeader } from './helpers.js'

describe('/openapi.json', () => {
  it('is the committed openapi/openapi.json (run `npm run openapi` after changing a route schema)', async () => {
    const app = await buildGateway({ replica: createReplica(), leader: noLeader() })
    try {
      const res = await app.inject({ url: '/openapi.json' })
      expect(res.statusCode).toBe(200)
      const committed: unknown = JSON.parse(await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'))
      expect(res.json()).toEqual(committed)
    } finally {
      await app.close()
    }
  })

  it('documents every REST route, names the shared schemas, and points to the feed', async () => {
    const doc = JSON.parse(await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as {
      openapi: string
      info: { description: string }
      paths: Record<string, Record<string, unknown>>
      components: { schemas: Record<string, unknown> }
    }
    expect(doc.openapi).toBe('3.1.0')
    expect(Object.fromEntries(Object.entries(doc.paths).map(([path, ops]) => [path, Object.keys(ops).sort()]))).toEqual({
      '/v1/health': ['get'],
      '/v1/services': ['get'],
      '/v1/services/{service}/providers': ['get'],
      '/v1/services/{service}/providers/{id}': ['delete', 'get', 'put'],
      '/v1/services/{service}/providers/{id}/heartbeat': ['put'],
      '/v1/services/{service}/providers/{id}/maintenance': ['put'],
      '/v1/tokens': ['get', 'post'],
      '/v1/tokens/{id}': ['delete']
    })
    expect(Object.keys(doc.components.schemas).sort()).toEqual([
      'Check', 'CreateTokenRequest', 'CreatedToken', 'Deregistered', 'Error', 'Health', 'HttpCheck', 'MaintenanceRequest',
      'Provider', 'ProviderList', 'ProviderProtocol', 'ProviderResult', 'ProviderSpec', 'ProviderState', 'ServiceList',
      'ServiceSummary', 'TcpCheck', 'Token', 'TokenList', 'TtlCheck'
    ])
    // The check is a oneOf of named kinds discriminated by their type, so that generated clients can tell them apart.
    expect(doc.components.schemas.Check).toMatchObject({
      oneOf: [{ $ref: '#/components/schemas/HttpCheck' }, { $ref: '#/components/schemas/TcpCheck' }, { $ref: '#/components/schemas/TtlCheck' }],
      discriminator: {
        propertyName: 'type',
        mapping: { http: '#/components/schemas/HttpCheck', tcp: '#/components/schemas/TcpCheck', ttl: '#/components/schemas/TtlCheck' }
      }
    })
    // Enums are plain string enums (one named type per enum in a generated client, not one per value).
    expect(doc.components.schemas.ProviderState).toMatchObject({ type: 'string', enum: ['pending', 'up', 'down', 'maintenance'] })
    expect(JSON.stringify(doc)).not.toMatch(/"anyOf":\[\{"type":"string","enum":\["[a-z]+"\]\}/)
    expect(doc.info.description).toContain('/v1/watch')
  })

  it('declares the bearer scheme, and 401 and 403 on every protected operation', async () => {
    const doc = JSON.parse(await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as {
      paths: Record<string, Record<string, { security?: unknown, responses: Record<string, unknown> }>>
      components: { securitySchemes: Record<string, unknown> }
    }
    expect(doc.components.securitySchemes).toEqual({ bearer: expect.objectContaining({ type: 'http', scheme: 'bearer' }) })
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`
        if (path === '/v1/health') {
          expect(op.security, where).toEqual([])
          continue
        }
        expect(op.security, where).toEqual([{ bearer: [] }])
        expect(Object.keys(op.responses), where).toContain('401')
        // A token sees the services it may read (possibly none): listing them is never a 403.
        if (path !== '/v1/services') expect(Object.keys(op.responses), where).toContain('403')
      }
    }
  })
})

describe('the answers openapi/openapi.json lists', () => {
  interface Operation {
    operationId?: string
    requestBody?: unknown
    responses: Record<string, { headers?: Record<string, unknown>, content?: { 'application/json'?: { schema?: { $ref?: string } } } }>
  }
  async function operations (): Promise<Array<{ method: string, path: string, op: Operation }>> {
    const doc = JSON.parse(await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, Operation>> }
    return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method, path, op })))
  }

  it('every operation has a unique operationId, and every error its Error body and headers', async () => {
    const ops = await operations()
    const ids = ops.map(({ op }) => op.operationId)
    expect(ids.every((id) => typeof id === 'string')).toBe(true)
    expect(new Set(ids).size).toBe(ids.length)
    for (const { method, path, op } of ops) {
      const where = `${method.toUpperCase()} ${path}`
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) < 400) continue
        expect(response.content?.['application/json']?.schema, `${where} ${status}`).toEqual({ $ref: '#/components/schemas/Error' })
        if (status === '503') expect(Object.keys(response.headers ?? {}), `${where} 503`).toContain('Retry-After')
        if (status === '401') expect(Object.keys(response.headers ?? {}), `${where} 401`).toContain('WWW-Authenticate')
      }
      if (method === 'get' && path !== '/v1/tokens') expect(Object.keys(op.responses['200']?.headers ?? {}), where).toContain('X-Roster-Revision')
      // A write reads a body (or accepts one it does not need): it can be unparseable, too big or of another type.
      if (method !== 'get') expect(Object.keys(op.responses), where).toEqual(expect.arrayContaining(['400', '413', '415', '503']))
    }
  })

  it('where it lists 413 and 415, the gateway answers them', async () => {
    const app = await buildGateway({ replica: createReplica(), leader: noLeader() })
    const tried: string[] = []
    try {
      for (const { method, path, op } of await operations()) {
        const url = path.replace('{service}', 'orders').replace('{id}', 'orders-1')
        const where = `${method.toUpperCase()} ${path}`
        if (op.responses['415'] !== undefined) {
          tried.push(op.operationId ?? where)
          const res = await app.inject({ method: method.toUpperCase() as 'PUT', url, headers: { 'content-type': 'application/xml' }, payload: '<x/>' })
          expect(res.statusCode, where).toBe(415)
          expect(Object.keys(res.json()).sort(), where).toEqual(['code', 'error', 'message', 'statusCode'])
        }
        if (op.responses['413'] !== undefined) {
          const res = await app.inject({ method: method.toUpperCase() as 'PUT', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ pad: 'x'.repeat(70_000) }) })
          expect(res.statusCode, where).toBe(413)
        }
      }
      expect(tried.sort()).toEqual([
        'createToken', 'deregisterProvider', 'registerProvider', 'renewProviderTtl', 'revokeToken', 'setProviderMaintenance'
      ])
    } finally {
      await app.close()
    }
  })
})
