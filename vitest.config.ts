// Test runner configuration. The global setup provides the Postgres server (ROSTER_TEST_DATABASE_URL's,
// or an embedded one) and migrates one template database per run; each test file copies it in
// milliseconds.
// Timeouts: hooks that start Roster processes or an embedded Postgres get 30 s.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['./test/helpers/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000
  }
})
