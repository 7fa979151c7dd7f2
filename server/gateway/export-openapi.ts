// `npm run openapi`: writes the gateway's OpenAPI document to openapi/openapi.json, built from
// the route schemas of an app that never starts (empty replica, a leader port that is never
// called). The committed file is what a drift test compares /openapi.json against.
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildGateway } from './app.js'
import type { LeaderPort } from './ports.js'
import { LeaderUnavailableError } from './errors.js'
import { createReplica } from './replica.js'

const target = fileURLToPath(new URL('../../openapi/openapi.json', import.meta.url))

const idleLeader: LeaderPort = {
  connected: false,
  write: async () => { throw new LeaderUnavailableError('export-openapi has no leader') },
  changesSince: async () => { throw new LeaderUnavailableError('export-openapi has no leader') },
  tokenWrite: async () => { throw new LeaderUnavailableError('export-openapi has no leader') }
}

const app = await buildGateway({ replica: createReplica(), leader: idleLeader })
try {
  await app.ready()
  await mkdir(dirname(target), { recursive: true })
  await writeFile(target, JSON.stringify(app.swagger(), null, 2) + '\n')
  console.log(`wrote ${target}`)
} finally {
  await app.close()
}
