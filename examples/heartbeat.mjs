// A provider's heartbeat, the whole contract: bind a ZeroMQ PUB socket at the registered
// endpoint and send [ 'hb', <provider id> ] every heartbeatIntervalMs.
// Usage: node examples/heartbeat.mjs [id] [endpoint] [intervalMs]
import { Publisher } from 'zeromq'

const [id = 'orders-1', endpoint = 'tcp://127.0.0.1:9100', intervalMs = '1000'] = process.argv.slice(2)
const pub = new Publisher({ linger: 0 })
await pub.bind(endpoint)
setInterval(() => { pub.send(['hb', id]).catch(() => {}) }, Number(intervalMs))
console.log(`heartbeating as ${id} on ${endpoint} every ${intervalMs} ms`)
