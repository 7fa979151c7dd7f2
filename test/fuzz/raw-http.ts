// A raw HTTP/1.1 client over a TCP socket, for what fetch refuses to send: any method, a request
// target with raw bytes and bad percent escapes, header values with NUL, controls and non-Latin-1
// text, bodies of arbitrary bytes, and WebSocket handshakes with junk headers. It reads the
// status, headers and body, or after a 101 the first WebSocket frame, within a time bound.
import { createHash } from 'node:crypto'
import { connect } from 'node:net'
import { wtf8 } from './hostile-text.js'

export interface RawRequest {
  method: string
  /** The request target as sent (already percent-encoded, or deliberately not). */
  target: string
  headers: Array<[string, string]>
  body?: Buffer
}

export interface RawAnswer {
  status: number
  headers: Map<string, string>
  body: Buffer
  /** After a 101: the payload of the first WebSocket frame, or null when none was awaited. */
  frame: Buffer | null
}

/** Header values lose CR and LF: a header split into two is the HTTP parser's business
 *  (request smuggling), not the registry's, and a premature blank line would leave the rest of
 *  the request waiting for a body that never comes. Every other byte is kept. */
function headerBytes (s: string): Buffer {
  return wtf8(s.replace(/[\r\n]/g, ''))
}

export function encodeRequest (req: RawRequest, host: string, extra: Array<[string, string]> = []): Buffer {
  const parts: Buffer[] = [
    Buffer.concat([headerBytes(req.method), Buffer.from(' '), headerBytes(req.target), Buffer.from(' HTTP/1.1\r\n')]),
    Buffer.from(`Host: ${host}\r\n`)
  ]
  for (const [name, value] of [...extra, ...req.headers]) {
    parts.push(Buffer.concat([headerBytes(name), Buffer.from(': '), headerBytes(value), Buffer.from('\r\n')]))
  }
  if (req.body !== undefined) parts.push(Buffer.from(`Content-Length: ${req.body.length}\r\n`))
  parts.push(Buffer.from('\r\n'))
  if (req.body !== undefined) parts.push(req.body)
  return Buffer.concat(parts)
}

/** The Sec-WebSocket-Accept a server must answer to `key` (RFC 6455 §4.2.2). */
export function websocketAccept (key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
}

interface Head { status: number, headers: Map<string, string>, end: number }

function parseHead (buf: Buffer): Head | null {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return null
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')
  if (match === null) throw new Error(`not an HTTP answer: ${JSON.stringify(buf.subarray(0, 200).toString('latin1'))}`)
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  return { status: Number(match[1]), headers, end: end + 4 }
}

/** Decodes a chunked body if complete; null while more is needed. */
function dechunk (buf: Buffer): Buffer | null {
  const out: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = buf.indexOf('\r\n', at)
    if (eol < 0) return null
    const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16)
    if (Number.isNaN(size)) throw new Error('bad chunk size')
    if (size === 0) return Buffer.concat(out)
    if (buf.length < eol + 2 + size + 2) return null
    out.push(buf.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
}

/** The first complete server frame's payload (servers never mask), or null while incomplete. */
function firstFrame (buf: Buffer): Buffer | null {
  if (buf.length < 2) return null
  let length = (buf[1] as number) & 0x7f
  let at = 2
  if (length === 126) {
    if (buf.length < 4) return null
    length = buf.readUInt16BE(2)
    at = 4
  } else if (length === 127) {
    if (buf.length < 10) return null
    length = Number(buf.readBigUInt64BE(2))
    at = 10
  }
  if (buf.length < at + length) return null
  return buf.subarray(at, at + length)
}

/**
 * Sends `bytes` on a new connection to 127.0.0.1:`port` and resolves with the answer. A 101 is
 * followed by its first frame when `awaitFrame` is set. Rejects when nothing complete came back
 * within `timeoutMs`: a server that keeps a client waiting is a finding too.
 */
export async function rawExchange (
  port: number,
  bytes: Buffer,
  opts: { timeoutMs: number, awaitFrame: boolean, head: boolean }
): Promise<RawAnswer> {
  return await new Promise<RawAnswer>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let buf = Buffer.alloc(0)
    let done = false
    const finish = (err: Error | null, answer?: RawAnswer): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      if (err !== null) reject(err)
      else resolve(answer as RawAnswer)
    }
    const timer = setTimeout(() => {
      finish(new Error(`no complete answer within ${opts.timeoutMs} ms; got ${JSON.stringify(buf.subarray(0, 300).toString('latin1'))}`))
    }, opts.timeoutMs)
    /** Tries to complete the answer from what has arrived; `ended`: the server closed. */
    const attempt = (ended: boolean): void => {
      let head: Head | null
      try {
        head = parseHead(buf)
      } catch (err) {
        finish(err as Error)
        return
      }
      if (head === null) {
        if (ended) finish(new Error(`connection closed before a complete answer; got ${JSON.stringify(buf.subarray(0, 300).toString('latin1'))}`))
        return
      }
      const rest = buf.subarray(head.end)
      if (head.status === 101) {
        if (!opts.awaitFrame) return finish(null, { status: 101, headers: head.headers, body: Buffer.alloc(0), frame: null })
        const frame = firstFrame(rest)
        if (frame !== null) return finish(null, { status: 101, headers: head.headers, body: Buffer.alloc(0), frame })
        if (ended) finish(new Error('the feed closed before its first frame'))
        return
      }
      if (opts.head || head.status === 204 || head.status === 304) {
        return finish(null, { status: head.status, headers: head.headers, body: Buffer.alloc(0), frame: null })
      }
      const length = head.headers.get('content-length')
      if (length !== undefined) {
        if (rest.length >= Number(length)) return finish(null, { status: head.status, headers: head.headers, body: rest.subarray(0, Number(length)), frame: null })
      } else if (/chunked/i.test(head.headers.get('transfer-encoding') ?? '')) {
        try {
          const body = dechunk(rest)
          if (body !== null) return finish(null, { status: head.status, headers: head.headers, body, frame: null })
        } catch (err) {
          return finish(err as Error)
        }
      } else if (ended) {
        return finish(null, { status: head.status, headers: head.headers, body: rest, frame: null })
      }
      if (ended) finish(new Error(`connection closed in the middle of the body: ${JSON.stringify(buf.subarray(0, 300).toString('latin1'))}`))
    }
    socket.on('data', (chunk: Buffer) => { buf = Buffer.concat([buf, chunk]); attempt(false) })
    socket.on('end', () => attempt(true))
    // A reset after the server answered and closed (it had not read our whole body) is fine.
    socket.on('error', (err) => { if (buf.includes('\r\n\r\n')) attempt(true); else finish(err) })
    socket.on('close', () => attempt(true))
    socket.write(bytes)
  })
}
