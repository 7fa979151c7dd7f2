// Test runner configuration. The global setup provides the Postgres server (ROSTER_TEST_DATABASE_URL's,
// or an embedded one) and migrates one template database per run; each test file copies it in
// milliseconds.
// Timeouts: hooks that start Roster processes or an embedded Postgres get 30 s.
// Tests import the client by the package's own name (`roster/client`); the `roster-source`
// condition of package.json's `exports` resolves it to client/index.ts rather than to the built
// dist/client, which a test run must not depend on.
import { defaultServerConditions } from 'vite'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  ssr: { resolve: { conditions: [...defaultServerConditions, 'roster-source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['./test/helpers/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000
  }
})
