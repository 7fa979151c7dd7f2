// `npm run asyncapi`: writes the change feed's AsyncAPI document to openapi/asyncapi.json, next
// to the REST API's OpenAPI document, and validates it with @asyncapi/parser (a devDependency:
// this script is for a clone, never for a running gateway). The committed file is what a drift
// test compares /asyncapi.json against.
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Parser } from '@asyncapi/parser'
import { buildAsyncApiDocument } from './asyncapi.js'

const target = fileURLToPath(new URL('../../openapi/asyncapi.json', import.meta.url))

const text = JSON.stringify(buildAsyncApiDocument(), null, 2) + '\n'
await mkdir(dirname(target), { recursive: true })
await writeFile(target, text)
console.log(`wrote ${target}`)
const { diagnostics } = await new Parser().parse(text)
for (const d of diagnostics) console.log(`${['error', 'warning', 'info', 'hint'][d.severity] ?? d.severity} ${d.code} at ${d.path.join('.')}: ${d.message}`)
console.log(`@asyncapi/parser: ${diagnostics.length} diagnostics`)
if (diagnostics.some((d) => d.severity === 0)) process.exitCode = 1
