// Follows Roster's change feed and prints every message. Usage:
//   node examples/watch.mjs [ws://127.0.0.1:7070/v1/watch?service=orders]
// Remember the last revision you processed; reconnect with &since=<it> to miss nothing.
import WebSocket from 'ws'

const url = process.argv[2] ?? 'ws://127.0.0.1:7070/v1/watch'
const ws = new WebSocket(url)
ws.on('message', (data) => console.log(data.toString()))
ws.on('close', (code, reason) => console.log(`closed ${code} ${reason}`))
