// ZMTP 3.x bytes written from RFC 23/37 (not with the codec's own encoders), for the tests of the
// codec (zmtp.test.ts) and of the connections (heartbeat-conns.test.ts): the greetings and
// commands a peer sends, and what the subscriber itself must write.

/** A 64-byte greeting; `asServer` as a PUB that binds sends it. */
export function greeting (opts: { major?: number, minor?: number, mechanism?: string, asServer?: boolean } = {}): Buffer {
  const g = Buffer.alloc(64)
  g[0] = 0xff
  g[9] = 0x7f
  g[10] = opts.major ?? 3
  g[11] = opts.minor ?? 1
  g.write(opts.mechanism ?? 'NULL', 12, 'ascii')
  g[32] = opts.asServer === true ? 1 : 0
  return g
}

export function rawFrame (flags: number, body: Buffer, long = body.length > 255): Buffer {
  if (!long) return Buffer.concat([Buffer.from([flags, body.length]), body])
  const head = Buffer.alloc(9)
  head[0] = flags | 0x02
  head.writeBigUInt64BE(BigInt(body.length), 1)
  return Buffer.concat([head, body])
}

export function cmd (name: string, data: Buffer = Buffer.alloc(0)): Buffer {
  return rawFrame(0x04, Buffer.concat([Buffer.from([name.length]), Buffer.from(name), data]))
}

export function props (entries: Array<[string, string]>): Buffer {
  return Buffer.concat(entries.map(([k, v]) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(Buffer.byteLength(v))
    return Buffer.concat([Buffer.from([k.length]), Buffer.from(k), len, Buffer.from(v)])
  }))
}

/** A PUB's READY. */
export const READY_PUB = cmd('READY', props([['Socket-Type', 'PUB']]))
