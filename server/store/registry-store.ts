// The registry aggregate in Postgres: the providers table, the change log and the roster_meta
// counters (latest revision, leader epoch, pruned_through). Every write is one transaction that
// is fenced by the writer's epoch, so a deposed leader can never commit. This module assigns no
// revisions (the leader does) and must never write outside a transaction or acknowledge a batch
// before COMMIT returns.
import type { Change, Provider } from '../protocol/model.js'
import { Errors } from '../protocol/error-codes.js'
import type { Db } from './db.js'

/** The writer's epoch is no longer current: another leader has claimed a newer term. */
export class FencedError extends Error {
  code = Errors.fenced.code
  constructor (message = 'the leader epoch is no longer current') {
    super(message)
    this.name = 'FencedError'
  }
}

/** A batch whose revisions do not strictly increase, or do not exceed the stored revision. A
 *  programming error in the writer, never a transient one: retrying cannot succeed. */
class RevisionOrderError extends Error {
  code = Errors.revisionOrder.code
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RevisionOrderError'
  }
}

/**
 * Postgres refused the batch for its data, and wrote none of it. Which SQLSTATE classes mean
 * that (UNSTORABLE_CLASSES) and why is decided here, once; the leader only isolates the culprit.
 * `problem` says what was broken in words a client may see (no constraint names, no values).
 */
export class UnstorableError extends Error {
  code = Errors.unstorable.code
  readonly problem: string
  constructor (problem: string, options?: { cause?: unknown }) {
    super(`the database refused the batch's data: ${problem}`, options)
    this.name = 'UnstorableError'
    this.problem = problem
  }
}

/**
 * SQLSTATE classes that say "these rows", not "this connection" or "this server":
 * - 22 data exception: a value the column or jsonb cannot hold (invalid text, a NUL, a lone
 *   surrogate escape, a number out of range);
 * - 23 integrity constraint violation: a CHECK, NOT NULL or foreign key (or a trigger raising
 *   check_violation) refuses a row. 23505 is not among them: a commit's only unique violation
 *   is a revision already stored (providers are upserted), which RevisionOrderError reports;
 * - 54 program limit exceeded: a value too large (an index row, a jsonb document).
 * Each is deterministic in the batch's rows, and the commit is one statement that failed as a
 * whole on a session that still works, so nothing was written and the same batch without the
 * culprit commits. Everything else is not about a row, or leaves unknown whether COMMIT took
 * effect: a lost connection (no SQLSTATE, class 08), 57 operator intervention (statement
 * timeout, shutdown), 53 insufficient resources (disk full), 40 transaction rollback, 42 (a bug
 * in our SQL), XX internal, P0001 (a trigger's RAISE without a code). Those propagate as they
 * are, and the leader steps down.
 */
const UNSTORABLE_CLASSES: Record<string, string> = {
  22: 'a value the database cannot store',
  23: 'a rule (constraint) of the database',
  54: 'a size limit of the database'
}

export interface RegistryStore {
  /** All providers (ordered by id) and the latest committed revision, read from one snapshot. */
  load(): Promise<{ revision: number, epoch: number, providers: Provider[] }>
  /** Starts a new leader term: epoch = epoch + 1, returns it. */
  claimEpoch(): Promise<number>
  /**
   * Persists a batch in ONE transaction: the providers' rows (deleted on 'deregistered'), the
   * change-log rows, then roster_meta.revision = the last change's revision, fenced by `epoch`.
   * Rejects with FencedError when `epoch` is no longer current, and with code
   * ROSTER_ERR_REVISION_ORDER when revisions do not strictly increase from the stored one, and
   * with UnstorableError when Postgres refused a row for its data; in each case nothing is
   * written. An empty batch is a no-op.
   */
  commit(epoch: number, changes: Change[]): Promise<void>
  /** The change log after `revision`, ascending, at most `limit`. available=false (and no changes)
   *  when `revision` < pruned_through: the history after it is no longer complete. */
  changesSince(revision: number, limit: number): Promise<{ available: boolean, changes: Change[] }>
  /** Deletes the oldest change-log rows so that at most `keep` remain, recording pruned_through. */
  prune(keep: number): Promise<void>
}

interface MetaRow { revision: number, epoch: number, pruned_through: number }

/** The providers table, column by column: its name, the Provider key it holds, and the type a
 *  commit's jsonb batch is read as (jsonb_to_recordset). Every statement on the table below is
 *  written from this list, so a new column is one line here, next to its migration. */
const PROVIDER_COLUMNS: ReadonlyArray<{ column: string, key: keyof Provider, type: string }> = [
  { column: 'id', key: 'id', type: 'text' },
  { column: 'service', key: 'service', type: 'text' },
  { column: 'host', key: 'host', type: 'text' },
  { column: 'port', key: 'port', type: 'int' },
  { column: 'protocol', key: 'protocol', type: 'text' },
  { column: 'heartbeat', key: 'heartbeat', type: 'text' },
  { column: 'heartbeat_interval_ms', key: 'heartbeatIntervalMs', type: 'int' },
  { column: 'tags', key: 'tags', type: 'jsonb' },
  { column: 'meta', key: 'meta', type: 'jsonb' },
  { column: 'health_check', key: 'check', type: 'jsonb' },
  { column: 'deregister_after_ms', key: 'deregisterAfterMs', type: 'int' },
  { column: 'state', key: 'state', type: 'text' },
  { column: 'state_since', key: 'stateSince', type: 'timestamptz' },
  { column: 'last_seen', key: 'lastSeen', type: 'timestamptz' },
  { column: 'reason', key: 'reason', type: 'text' },
  { column: 'detail', key: 'detail', type: 'text' },
  { column: 'detected_after_ms', key: 'detectedAfterMs', type: 'int' },
  { column: 'revision', key: 'revision', type: 'bigint' }
]

function columnList (each: (c: (typeof PROVIDER_COLUMNS)[number]) => string, columns = PROVIDER_COLUMNS): string {
  return columns.map(each).join(', ')
}
/** `id, service, …, revision`: the table's columns. */
const COLUMNS = columnList((c) => c.column)
// Batches travel as one jsonb parameter expanded by jsonb_to_recordset: a fixed number of
// statements per commit whatever the batch size, and one prepared statement text whatever its
// length. Its fields are the Provider object's keys, quoted to keep their camelCase.
/** `"id" text, …, "heartbeatIntervalMs" int, …`: a batch's record. */
const RECORD = columnList((c) => `"${c.key}" ${c.type}`)
/** The record's fields, in the columns' order. */
const RECORD_FIELDS = columnList((c) => `"${c.key}"`)
/** An upsert's update: every column but the key. */
const UPDATE_ALL = columnList((c) => `${c.column} = excluded.${c.column}`, PROVIDER_COLUMNS.filter((c) => c.column !== 'id'))
/** A row read back under the Provider object's keys. */
const AS_PROVIDER = columnList((c) => `${c.column} as "${c.key}"`)

/** A providers row as AS_PROVIDER reads it: the Provider's keys, with Postgres's nulls for the
 *  optional ones and Dates for the timestamps. */
type ProviderRow = NullForAbsent<Omit<Provider, 'stateSince' | 'lastSeen'>> & { stateSince: Date, lastSeen: Date | null }
type NullForAbsent<T> = { [K in keyof T]-?: undefined extends T[K] ? Exclude<T[K], undefined> | null : T[K] }

// A batch's commit: $1 the last revision, $2 the writer's epoch, $3 the first revision, $4 the
// ids removed, $5 the providers kept (their last change in the batch), $6 the change-log rows.
// Data-modifying CTEs run once each; the writes read `fence`, so they run after it and only if it
// advanced the revision. Returns the new revision, or no row when the batch was refused.
const COMMIT_SQL = `
  with fence as (
    update roster_meta set revision = $1
     where id = 1 and epoch = $2 and revision < $3
    returning revision
  ), removed as (
    delete from providers
     where id in (select jsonb_array_elements_text($4::jsonb)) and exists (select 1 from fence)
  ), kept as (
    insert into providers as p (${COLUMNS})
    select ${RECORD_FIELDS}
      from jsonb_to_recordset($5::jsonb) as x(${RECORD})
     where exists (select 1 from fence)
    on conflict (id) do update set ${UPDATE_ALL}
  ), logged as (
    insert into changes (revision, event, provider_id, service, provider)
    select revision, event, provider->>'id', provider->>'service', provider
      from jsonb_to_recordset($6::jsonb) as x(revision bigint, event text, provider jsonb)
     where exists (select 1 from fence)
  )
  select revision from fence`

export function createRegistryStore (db: Db): RegistryStore {
  return {
    async load () {
      return db.transaction(async (tx) => {
        // One snapshot for both reads, so the revision describes exactly these providers.
        await tx.query('set transaction isolation level repeatable read')
        const [meta] = await tx.query<MetaRow>('select revision, epoch from roster_meta where id = 1')
        if (meta === undefined) throw missingMeta()
        const rows = await tx.query<ProviderRow>(`select ${AS_PROVIDER} from providers order by id`)
        return { revision: meta.revision, epoch: meta.epoch, providers: rows.map(providerFromRow) }
      })
    },

    async claimEpoch () {
      const [row] = await db.query<{ epoch: number }>(
        'update roster_meta set epoch = epoch + 1 where id = 1 returning epoch'
      )
      if (row === undefined) throw missingMeta()
      return row.epoch
    },

    async commit (epoch, changes) {
      const first = changes[0]
      const last = changes.at(-1)
      if (first === undefined || last === undefined) return
      for (let i = 1; i < changes.length; i++) {
        if (changes[i]!.revision <= changes[i - 1]!.revision) {
          throw new RevisionOrderError(
            `revisions must strictly increase within a batch: ${changes[i]!.revision} follows ${changes[i - 1]!.revision}`
          )
        }
      }

      // Applying the changes one by one leaves each provider in the state of its last change in
      // the batch, so only that one is written: set-based statements cannot touch a row twice.
      const lastById = new Map<string, Change>()
      for (const change of changes) lastById.set(change.provider.id, change)
      const removed: string[] = []
      const kept: Provider[] = []
      for (const change of lastById.values()) {
        if (change.event === 'deregistered') removed.push(change.provider.id)
        // The row's revision is the revision of its last change, whatever the object carried.
        else kept.push({ ...change.provider, revision: change.revision })
      }

      // One statement (prepared: parsed and planned once per connection), so one round trip and one
      // transaction: under load every round trip is a wake-up of this process and of a Postgres
      // backend, and six of them (BEGIN, delete, upsert, log, fence, COMMIT) made a commit several
      // times slower than its work. The fence comes first and everything else writes only if it
      // matched, so a refused batch writes nothing. Race: a new leader's claimEpoch may commit
      // while this statement waits for the meta row's lock; the update then re-checks its WHERE
      // against the new epoch, matches nothing, and so does every write. Had this statement locked
      // the row first, claimEpoch waits for our commit and the new leader's load() sees the whole
      // batch.
      let advanced: Array<{ revision: number }>
      try {
        advanced = await db.prepared<{ revision: number }>('roster_commit', COMMIT_SQL, [
          last.revision, epoch, first.revision,
          JSON.stringify(removed), JSON.stringify(kept), JSON.stringify(changes)
        ])
      } catch (err) {
        const state = sqlState(err)
        if (state === '23505') {
          throw new RevisionOrderError(`a revision in ${first.revision}..${last.revision} is already stored`, { cause: err })
        }
        const problem = typeof state === 'string' ? UNSTORABLE_CLASSES[state.slice(0, 2)] : undefined
        if (problem !== undefined) throw new UnstorableError(problem, { cause: err })
        throw err
      }
      if (advanced.length > 0) return
      const [meta] = await db.query<MetaRow>('select revision, epoch from roster_meta where id = 1')
      if (meta === undefined) throw missingMeta()
      if (meta.epoch !== epoch) throw new FencedError(`epoch ${epoch} is no longer current (now ${meta.epoch})`)
      throw new RevisionOrderError(
        `revision ${first.revision} does not follow the stored revision ${meta.revision}`
      )
    },

    async changesSince (revision, limit) {
      assertCount('revision', revision)
      if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`)
      // One statement, so pruned_through and the rows come from the same snapshot: a prune that
      // commits in between cannot make a gap look available.
      const rows = await db.query<{ pruned_through: number, revision: number | null, event: Change['event'] | null, provider: Provider | null }>(`
        select m.pruned_through, c.revision, c.event, c.provider
          from roster_meta m
          left join lateral (
            select revision, event, provider
              from changes
             where revision > $1
             order by revision
             limit $2
          ) c on true
         where m.id = 1
         order by c.revision`,
      [revision, limit])
      const meta = rows[0]
      if (meta === undefined) throw missingMeta()
      if (revision < meta.pruned_through) return { available: false, changes: [] }
      const changes: Change[] = []
      for (const row of rows) {
        if (row.revision !== null && row.event !== null && row.provider !== null) {
          changes.push({ revision: row.revision, event: row.event, provider: row.provider })
        }
      }
      return { available: true, changes }
    },

    async prune (keep) {
      assertCount('keep', keep)
      // The cutoff is the newest row that must go (the keep+1-th newest); everything at or below
      // it is deleted, and pruned_through moves up to it in the same statement.
      await db.query(`
        with cutoff as (
          select revision from changes order by revision desc offset $1 limit 1
        ), doomed as (
          delete from changes where revision <= (select revision from cutoff) returning revision
        )
        update roster_meta
           set pruned_through = greatest(pruned_through, (select revision from cutoff))
         where id = 1 and exists (select 1 from doomed)`,
      [keep])
    }
  }
}

/** A row as a Provider: timestamps as ISO strings, and an optional field absent rather than null. */
function providerFromRow (row: ProviderRow): Provider {
  const { heartbeat, check, deregisterAfterMs, reason, detail, detectedAfterMs, stateSince, lastSeen, ...always } = row
  return {
    ...always,
    ...(heartbeat === null ? {} : { heartbeat }),
    ...(check === null ? {} : { check }),
    ...(deregisterAfterMs === null ? {} : { deregisterAfterMs }),
    stateSince: stateSince.toISOString(),
    lastSeen: lastSeen === null ? null : lastSeen.toISOString(),
    ...(reason === null ? {} : { reason }),
    ...(detail === null ? {} : { detail }),
    ...(detectedAfterMs === null ? {} : { detectedAfterMs })
  }
}

function assertCount (name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`)
}

function missingMeta (): Error {
  return new Error('roster_meta has no row: the database is not migrated')
}

function sqlState (err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined
}
