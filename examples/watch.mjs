// Follows Roster's change feed and prints every message. Usage:
//   node examples/watch.mjs [ws://127.0.0.1:7070/v1/watch?service=orders]
// With --auth on, put the token in ROSTER_TOKEN. Remember the last revision you processed;
// reconnect with &since=<it> to miss nothing. When the gateway refuses the feed (a bad query,
// a missing token) or cannot be reached, it prints why and exits 1; when the feed closes, it
// prints the close code and reason, and exits 1 unless the close was normal (1000).
import WebSocket from 'ws'

const url = process.argv[2] ?? 'ws://127.0.0.1:7070/v1/watch'
const token = process.env.ROSTER_TOKEN

function fail (message) {
  console.error(`watch.mjs: ${message}`)
  process.exit(1)
}

let ws
try {
  ws = new WebSocket(url, { headers: token === undefined || token === '' ? {} : { Authorization: `Bearer ${token}` } })
} catch (err) {
  fail(`${url}: ${err.message}`) // not a ws:// or wss:// URL
}
ws.on('message', (data) => console.log(data.toString()))
// A refused upgrade: the gateway's answer is Roster's JSON error, { statusCode, code, error, message }.
ws.on('unexpected-response', (_req, res) => {
  let text = ''
  res.setEncoding('utf8')
  res.on('data', (chunk) => { text += chunk })
  res.on('end', () => {
    let body
    try { body = JSON.parse(text) } catch { body = null }
    fail(body !== null && typeof body.message === 'string'
      ? `${res.statusCode} ${body.code}: ${body.message}`
      : `${res.statusCode} ${res.statusMessage}`)
  })
})
ws.on('error', (err) => fail(`${url}: ${err.code ?? err.message}${err.code === undefined ? '' : ` (${err.message})`}`))
ws.on('close', (code, reason) => {
  console.log(`closed ${code} ${reason}`)
  process.exit(code === 1000 ? 0 : 1)
})
