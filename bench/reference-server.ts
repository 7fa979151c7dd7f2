// The read and register benchmarks' floor: a plain Fastify server in a process of its own, with
// Roster's two busiest routes answering a constant: the exact bytes (and revision header) Roster's
// gateway gave for the same request, read once from a file at start. `GET …/providers` answers
// 200 with the revision header; `PUT …/providers/:id` parses the JSON body as Fastify does for
// any route and answers 201, without the header, like Roster's PUT.
// What is left is Fastify's own per-request cost (parsing, routing, reply, headers) on one core,
// the floor for any route of Roster's: the benchmarks report Roster's throughput beside it.
//
// Self-contained (Fastify and Node built-ins): the runner transpiles it once per run.
// Usage: node reference-server.mjs BODY_FILE REVISION PORT   → prints {"ready":true,"pid":N,"port":P}
// It exits when stdin closes (its parent is gone).
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'

const [bodyFile, revision, port] = process.argv.slice(2)
if (bodyFile === undefined || revision === undefined || !/^\d+$/.test(revision) || port === undefined || !/^\d+$/.test(port)) {
  process.stderr.write('usage: reference-server BODY_FILE REVISION PORT\n')
  process.exit(2)
}
const body = readFileSync(bodyFile)

const app = Fastify({ logger: false })
app.get('/v1/services/:service/providers', async (_req, reply) => {
  reply.header('x-roster-revision', revision).type('application/json; charset=utf-8')
  return body
})
app.put('/v1/services/:service/providers/:id', async (_req, reply) => {
  reply.code(201).type('application/json; charset=utf-8')
  return body
})
const address = await app.listen({ port: Number(port), host: '127.0.0.1' })
process.stdin.resume()
process.stdin.on('close', () => { void app.close().then(() => process.exit(0)) })
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, port: Number(new URL(address).port) }) + '\n')
