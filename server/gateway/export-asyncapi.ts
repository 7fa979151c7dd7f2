// `npm run asyncapi`: writes the change feed's AsyncAPI document to openapi/asyncapi.json, next
// to the REST API's OpenAPI document. The committed file is what a drift test compares
// /asyncapi.json against.
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildAsyncApiDocument } from './asyncapi.js'

const target = fileURLToPath(new URL('../../openapi/asyncapi.json', import.meta.url))

await mkdir(dirname(target), { recursive: true })
await writeFile(target, JSON.stringify(buildAsyncApiDocument(), null, 2) + '\n')
console.log(`wrote ${target}`)
