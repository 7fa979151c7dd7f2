// A provider's heartbeat, the whole contract: bind a ZeroMQ PUB socket at the registered
// endpoint and send [ 'hb', <provider id> ] every heartbeatIntervalMs.
// Usage: node examples/heartbeat.mjs [id] [endpoint] [intervalMs]
// On a bad argument or an endpoint it cannot bind, it says why and exits 1.
import { Publisher } from 'zeromq'

const [id = 'orders-1', endpoint = 'tcp://127.0.0.1:9100', intervalMs = '1000'] = process.argv.slice(2)
const interval = Number(intervalMs)
if (!Number.isInteger(interval) || interval < 50 || interval > 60000) {
  console.error(`heartbeat.mjs: intervalMs must be an integer 50–60000 (the registration's heartbeatIntervalMs), got ${JSON.stringify(intervalMs)}`)
  process.exit(1)
}
const pub = new Publisher({ linger: 0 })
try {
  await pub.bind(endpoint)
} catch (err) {
  console.error(`heartbeat.mjs: cannot bind ${endpoint}: ${err.message}`)
  process.exit(1)
}
setInterval(() => { pub.send(['hb', id]).catch(() => {}) }, interval)
console.log(`heartbeating as ${id} on ${endpoint} every ${interval} ms`)
