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
