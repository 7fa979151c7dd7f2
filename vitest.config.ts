// Test runner configuration. The global setup migrates one Postgres template database per run
// (when ROSTER_TEST_DATABASE_URL is set); each test file then copies it in milliseconds.
// Timeouts: an embedded PGlite instance takes about 4 s to boot, hooks that boot one get 30 s.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['./test/helpers/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000
  }
})
