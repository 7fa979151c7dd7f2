// `npm run lint`: neostandard (standard's style, ESLint flat config, typescript-eslint for the .ts
// files) over every tracked source file. What .gitignore leaves out (dist/, node_modules/,
// test-artifacts/, bench results) is not linted. The few rules below are changed where the code
// breaks them on purpose; each says why.
import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'
import globals from 'globals'

export default [
  ...neostandard({
    ts: true,
    noJsx: true,
    ignores: resolveIgnoresFromGitignore(),
  }),
  {
    // A disable comment that no longer disables anything is stale: fail on it.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Wide records (provider fixtures, benchmark samples, their interfaces) are wrapped into
      // lines of related fields rather than one field a line, which would make a provider
      // fixture fifteen lines long.
      '@stylistic/object-property-newline': 'off',
      // `void promise` marks a promise deliberately not awaited (signal handlers, timers, the
      // demote paths, Fastify's chainable reply setters); as an expression it is still an error,
      // as in ts-standard.
      'no-void': ['error', { allowAsStatement: true }],
      // The loops it flags wait on flags another task or callback flips (closing, stopped, the
      // leader's term, the send queue's running pump, a set that place() grows); the rule only
      // looks at the loop's own body, so every finding was a false positive.
      'no-unmodified-loop-condition': 'off',
      // The code matches control characters on purpose: printable.ts escapes them in untrusted
      // text, and the tests look for them and strip ANSI colours.
      'no-control-regex': 'off',
    },
  },
  {
    files: ['**/*.ts'],
    rules: {
      // TypeBox's idiom: a schema constant and its Static<typeof X> type share a name.
      // TypeScript itself reports real redeclarations.
      '@typescript-eslint/no-redeclare': 'off',
      // neostandard's options, plus: a name starting with `_` is unused on purpose (a loop that
      // only drains or counts), as tsconfig's noUnusedLocals already accepts.
      '@typescript-eslint/no-unused-vars': ['error', {
        args: 'none',
        caughtErrors: 'none',
        ignoreRestSiblings: true,
        vars: 'all',
        varsIgnorePattern: '^_',
      }],
    },
  },
  {
    // The benchmarks and the chaos run are plain processes, not vitest: what they share with the
    // tests lives in harness/ (see its README), and test/ stays the tests' own.
    files: ['bench/**', 'chaos/**', 'harness/**'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [{ name: 'vitest', message: 'bench/, chaos/ and harness/ run outside vitest.' }],
        patterns: [{ regex: '(^|/)test/', message: 'bench/, chaos/ and harness/ must not import test/: move what they share to harness/.' }],
      }],
    },
  },
  {
    // The leader and the worker are pure cores and thin shells (ARCHITECTURE.md › The roles): a
    // function that outgrows 100 lines (a factory's closure counts whole, and so does an IIFE) is
    // a shell taking on rules again.
    files: ['server/leader/**', 'server/worker/**'],
    rules: {
      'max-lines-per-function': ['error', { max: 100, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
  {
    // The dashboard's scripts run in the browser, not in Node.
    files: ['server/gateway/ui/*.js'],
    languageOptions: { globals: globals.browser },
  },
]
