// What a few tests need beyond Node.js and Postgres, and the note each gives when it skips
// itself for want of it: `skip(!hasX, NEEDS_X)` inside the test, so that the run's closing
// summary (skip-summary.ts) can say what was skipped and how to include it.
import { spawnSync } from 'node:child_process'

/** util-linux `script`, which gives a command a real pseudo-terminal. */
export const hasScript = spawnSync('script', ['--version']).status === 0
export const NEEDS_SCRIPT = 'needs util-linux `script` for a pseudo-terminal (apt-get install util-linux)'

/** Debian's pyzmq for /usr/bin/python3 (test/helpers/emitters.ts hasPyzmq), the independent ZeroMQ peer. */
export const NEEDS_PYZMQ = 'needs pyzmq for /usr/bin/python3 (apt-get install python3-zmq)'

/** Debian's python3-prometheus-client, whose parser the metrics tests read /metrics with (test/helpers/prometheus.ts). */
export const NEEDS_PROMETHEUS_PARSER = 'needs the Prometheus text parser for /usr/bin/python3 (apt-get install python3-prometheus-client)'

/** Debian's Chromium, which the dashboard's browser test drives (test/e2e/ui-chromium.test.ts). */
export const NEEDS_CHROMIUM = 'needs Chromium at /usr/bin/chromium (apt-get install chromium), or ROSTER_TEST_CHROMIUM naming one'
