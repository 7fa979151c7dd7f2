// Test runner configuration. The global setup provides the Postgres server (ROSTER_TEST_DATABASE_URL's,
// or an embedded one) and migrates one template database per run; each test file copies it in
// milliseconds.
// Timeouts: hooks that start Roster processes or an embedded Postgres get 30 s.
// Tests import the client by the package's own name (`roster/client`), resolved here to
// client/index.ts rather than to the built dist/client, which a test run must not depend on
// (tsconfig.json does the same for the typechecker with the `roster-source` export condition).
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  resolve: { alias: { 'roster/client': fileURLToPath(new URL('./client/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['./test/helpers/global-setup.ts'],
    // The default output, then which tests skipped themselves for want of a tool, and how to include them.
    reporters: ['default', './test/helpers/skip-summary.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000
  }
})
