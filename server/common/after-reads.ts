// Liveness checks that run after the sockets have been read. A Node event-loop turn runs timers
// before it polls for I/O, so a check in a timer callback that comes due while the loop was busy
// or stalled (starved of CPU, a GC pause, a long commit on embedded Postgres) would see the
// heartbeats, PINGs, PONGs or renewals that arrived in time still unread, and call a live peer
// silent: after a long stall, every peer at once. Deferring the check to the same turn's check
// phase (setImmediate) lets the poll phase read what the sockets hold first. It costs microseconds
// and defers once, so a process under constant load still decides.

/** Runs `check` once after this turn's socket reads. */
export function afterReads (check: () => void): NodeJS.Immediate {
  return setImmediate(check)
}

/** Runs `check` every `intervalMs`, each time after that turn's socket reads. */
export function everyAfterReads (check: () => void, intervalMs: number): NodeJS.Timeout {
  return setInterval(() => setImmediate(check), intervalMs)
}
