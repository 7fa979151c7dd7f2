// The hooks every multi-process test file needs, in one place: after each test, every `roster`
// process, heartbeat emitter and TCP proxy it started is gone (whatever it failed on); after the
// file, its temp storage. Call at a test file's top level.
import { afterAll, afterEach } from 'vitest'
import { killAllRoster } from '../../harness/roster-process.js'
import { removeTestStorage } from './cluster.js'
import { killAllEmitters } from './emitters.js'
import { closeAllProxies } from './tcp-proxy.js'

export function cleanUpAfterEachTest (): void {
  afterEach(async () => {
    await killAllEmitters()
    await killAllRoster()
    await closeAllProxies()
  })
  afterAll(async () => {
    await removeTestStorage()
  })
}
