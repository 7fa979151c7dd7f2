// Leader election: at most one leader process holds a session-level Postgres advisory lock, on a
// dedicated unpooled pg.Client that it keeps for its whole term (through a pool the lock would
// land on a random connection). It owns that client and watches it, reporting a lost lock at
// once. It must never call pg_try_advisory_lock again while holding the lock (session locks stack,
// and a stacked lock survives one unlock), and it is not a fence by itself: the epoch in
// roster_meta is what makes a deposed leader harmless.
import pg from 'pg'

export interface LeaderLock {
  /** Tries once to become leader; never stacks the lock (keeps a held flag). Resolves false when
   *  another process holds it; rejects when Postgres cannot be reached (the caller retries). */
  tryAcquire(): Promise<boolean>
  readonly held: boolean
  /** Called once when a held lock is lost (session error/end, or a periodic check fails). The
   *  callback must not throw: it runs inside the client's event handlers. */
  onLost(cb: (err: Error) => void): void
  /** Called when a holder announced that it released the lock (a graceful stop), so that a
   *  standby tries at once instead of at its next poll. Only while not holding it. */
  onFreed(cb: () => void): void
  /** Releases (pg_advisory_unlock, then ends the client); idempotent. */
  release(): Promise<void>
}

/** The well-known leader lock key: the ASCII bytes of "RstrLdr" (0x527374724c6472), as a
 *  string because pg round-trips bigint parameters as strings. */
const LEADER_LOCK_KEY = '23207892061283442'
/** A releasing holder NOTIFYs this channel; contenders LISTEN on their lock session. A spurious
 *  wake-up (another key, or our own release) costs one pg_try_advisory_lock. */
const FREED_CHANNEL = 'roster_leader_freed'

/**
 * Timing. A terminated or closed session is noticed at once (the client emits 'error'/'end');
 * a silently dead one (half-open TCP, a partition, a frozen server) only by a query that gets no
 * answer. Checking with `select 1` every 200 ms under a 500 ms query timeout notices it within
 * 200 + 500 = 0.7 s, far sooner than TCP keepalive (minutes with OS defaults). That bounds how
 * long a deposed leader can go on publishing after its session died (its writes are already
 * refused by the epoch fence, and receivers drop its messages once they see the new epoch), and
 * how long a write waits for its 503 while Postgres is unreachable: the leader steps down, its
 * followers see its sockets close and refuse writes at once (issue 4: 503 within 1 s).
 * 500 ms is still fifty times a loopback or LAN round trip (< 10 ms); a server so busy that it
 * misses it costs a failover, not correctness. Connecting gets 1000 ms (a TLS handshake).
 */
const DEFAULT_CHECK_INTERVAL_MS = 200
const QUERY_TIMEOUT_MS = 500
const CONNECTION_TIMEOUT_MS = 1000
/** A holder frozen by SIGSTOP (or a VM pause) keeps its TCP connection, and with it the lock,
 *  for as long as it is frozen: its kernel still answers. Postgres ends a session idle this long
 *  (idle_session_timeout, Postgres 14+), which frees the lock for a standby: 1.5 s is seven
 *  missed checks of a live holder, and with the standby's 0.5 s poll keeps a frozen leader's
 *  write outage near the 2 s bound (README.md › What each failure looks like to a client). The resumed leader finds its session gone and steps down;
 *  anything it had in flight is refused by the epoch fence. */
const IDLE_SESSION_TIMEOUT_MS = 1500
/** How long release() waits for a clean goodbye before giving up on the socket. */
const END_TIMEOUT_MS = 1000

export function createPgLeaderLock (opts: {
  databaseUrl: string
  /** Advisory lock key (a bigint); default LEADER_LOCK_KEY. */
  key?: bigint | string
  /** Period of the session check while held, in ms; default 200. */
  checkIntervalMs?: number
  /** application_name of the session, visible in pg_stat_activity; default 'roster-leader'. */
  applicationName?: string
}): LeaderLock {
  const key = String(opts.key ?? LEADER_LOCK_KEY)
  if (!/^-?\d{1,19}$/.test(key)) throw new RangeError(`leader lock key must be a bigint, got ${key}`)
  const checkIntervalMs = opts.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS
  const lostCallbacks: ((err: Error) => void)[] = []
  const freedCallbacks: (() => void)[] = []

  let client: pg.Client | undefined
  let held = false
  let checkTimer: NodeJS.Timeout | undefined
  // tryAcquire and release run one at a time: two overlapping tryAcquire calls would otherwise
  // both see held=false and send pg_try_advisory_lock twice on one session, stacking the lock.
  let queue: Promise<unknown> = Promise.resolve()
  function serialised<T> (op: () => Promise<T>): Promise<T> {
    const run = queue.then(op, op)
    queue = run.catch(() => {})
    return run
  }

  function newClient (): pg.Client {
    const c = new pg.Client({
      connectionString: opts.databaseUrl,
      keepAlive: true,
      connectionTimeoutMillis: CONNECTION_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      application_name: opts.applicationName ?? 'roster-leader',
      options: `-c idle_session_timeout=${IDLE_SESSION_TIMEOUT_MS}`
    })
    c.on('error', (err) => { discard(c, err) })
    c.on('end', () => { discard(c, new Error('leader lock session ended')) })
    c.on('notification', (msg) => {
      if (msg.channel === FREED_CHANNEL && !held) for (const cb of freedCallbacks) cb()
    })
    return c
  }

  /** Drops a client whose session is gone or suspect. Ending the socket also makes Postgres free
   *  any lock the session still holds, so a lock granted after a timed-out reply cannot linger. */
  function discard (c: pg.Client, err: Error): void {
    if (c !== client) return
    client = undefined
    c.end().catch(() => {})
    if (held) lose(err)
  }

  function lose (err: Error): void {
    held = false
    stopChecks()
    for (const cb of lostCallbacks) cb(err)
  }

  function scheduleCheck (c: pg.Client): void {
    checkTimer = setTimeout(() => {
      c.query('select 1').then(
        () => { if (held && c === client) scheduleCheck(c) },
        (err: unknown) => { if (held) discard(c, asError(err)) }
      )
    }, checkIntervalMs)
    // The leader's sockets keep its process alive; this timer alone must not.
    checkTimer.unref()
  }

  function stopChecks (): void {
    clearTimeout(checkTimer)
    checkTimer = undefined
  }

  return {
    get held () { return held },

    tryAcquire () {
      return serialised(async () => {
        if (held) return true
        let c = client
        if (c === undefined) {
          c = newClient()
          client = c
          try {
            await c.connect()
            await c.query(`listen ${FREED_CHANNEL}`)
          } catch (err) {
            discard(c, asError(err))
            throw err
          }
        }
        let acquired: boolean
        try {
          const result = await c.query<{ acquired: boolean }>(
            'select pg_try_advisory_lock($1::bigint) as acquired', [key]
          )
          acquired = result.rows[0]?.acquired === true
        } catch (err) {
          // The reply may be lost while the lock was granted: end the session so it is freed.
          discard(c, asError(err))
          throw err
        }
        // The session may have died between the reply and now; then the lock is already gone.
        if (!acquired || c !== client) return false
        held = true
        scheduleCheck(c)
        return true
      })
    },

    onLost (cb) {
      lostCallbacks.push(cb)
    },

    onFreed (cb) {
      freedCallbacks.push(cb)
    },

    release () {
      return serialised(async () => {
        const c = client
        const wasHeld = held
        // Clear state first: the 'end' that follows is our doing, not a lost lock.
        held = false
        client = undefined
        stopChecks()
        if (c === undefined) return
        if (wasHeld) {
          // Unlock explicitly so a standby can take over before our socket is even closed, and
          // tell the standbys, which otherwise notice only at their next poll; the notification
          // goes out when this statement ends, after the unlock. If the session is already
          // broken, ending it frees the lock anyway (and the standbys poll).
          await c.query(`select pg_advisory_unlock($1::bigint), pg_notify('${FREED_CHANNEL}', '')`, [key]).catch(() => {})
        }
        await endWithin(c, END_TIMEOUT_MS)
      })
    }
  }
}

/**
 * The embedded database's leader lock. The data-directory lock (data-dir-lock.ts) already makes
 * this process the only one that can open the database, so the election is decided before the
 * leader starts; an advisory lock would cost a session (a server process, about 12 MB of RSS,
 * most of the idle footprint's margin) and a check query five times a second, to learn nothing.
 * Held from the first tryAcquire until `serverLost` settles (the embedded Postgres exited under
 * us): then lost, and no later tryAcquire succeeds. There are no standbys, so nothing is freed.
 */
export function createSoleLeaderLock (serverLost: Promise<Error>): LeaderLock {
  const lostCallbacks: ((err: Error) => void)[] = []
  let held = false
  let gone: Error | undefined
  void serverLost.then((err) => {
    gone = err
    if (!held) return
    held = false
    for (const cb of lostCallbacks) cb(err)
  })
  return {
    get held () { return held },
    async tryAcquire () {
      if (gone !== undefined) throw gone
      held = true
      return true
    },
    onLost (cb) { lostCallbacks.push(cb) },
    onFreed () {},
    async release () { held = false }
  }
}

async function endWithin (c: pg.Client, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })
  try {
    await Promise.race([c.end().catch(() => {}), timeout])
  } finally {
    clearTimeout(timer)
  }
}

function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
