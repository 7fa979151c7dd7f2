// A real leader in this process, alone on its test database (these tests are about its
// decisions, not its election), with a scripted gateway and a reader of its event feed; everything it starts is
// stopped after each test. Call it inside a describe block (it registers an afterEach).
import { afterEach } from 'vitest'
import { createLeader, type Leader, type LeaderConfig } from '../../server/leader/leader.js'
import { silentLog } from '../../server/common/log.js'
import { createPgLeaderLock } from '../../server/store/leader-lock.js'
import { createRegistryStore } from '../../server/store/registry-store.js'
import { createTokenStore } from '../../server/store/token-store.js'
import { freeLeaderEndpoint } from '../../harness/ports.js'
import type { Backend } from '../helpers/postgres.js'
import { readLeaderFeed, startFollower, type FeedReader, type ScriptedFollower } from './scripted-follower.js'

export interface LocalLeader { leader: Leader, bind: string, gw: ScriptedFollower, feed: FeedReader }

export interface LocalLeaders {
  /** An active leader at `bind` (default: a free endpoint), its feed connected. */
  start: (bind?: string) => Promise<LocalLeader>
  /** A scripted follower (a worker, usually) of the leader at `bind`. */
  follower: (bind: string, id?: string) => ScriptedFollower
}

export function useLocalLeaders (backend: Backend, config: Omit<LeaderConfig, 'bind'> = {}): LocalLeaders {
  const leaders: Leader[] = []
  const closers: Array<ScriptedFollower | FeedReader> = []
  afterEach(async () => {
    for (const c of closers.splice(0)) c.close()
    for (const l of leaders.splice(0)) await l.stop()
  })

  function follower (bind: string, id?: string): ScriptedFollower {
    const f = startFollower(bind, id)
    closers.push(f)
    return f
  }

  return {
    async start (bind) {
      const endpoint = bind ?? await freeLeaderEndpoint()
      const leader = createLeader({ store: createRegistryStore(backend.db), tokens: createTokenStore(backend.db), lock: createPgLeaderLock({ databaseUrl: backend.url, applicationName: `local-leader-${process.pid}` }), log: silentLog, config: { ...config, bind: endpoint } })
      leaders.push(leader)
      await leader.start()
      await leader.whenActive()
      const feed = readLeaderFeed(endpoint)
      closers.push(feed)
      await feed.connected()
      return { leader, bind: endpoint, gw: follower(endpoint), feed }
    },
    follower
  }
}
