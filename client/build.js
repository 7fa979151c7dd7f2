#!/usr/bin/env node
// Builds what `roster/client` is for someone who installs the package: dist/client/index.js (one
// ES module bundled by esbuild from client/, importing only `ws` and Node's built-ins) and its
// declarations under dist/client/types (by the TypeScript compiler). npm runs it as `prepare`,
// on `npm install` and `npm ci` of this project and before `npm pack`/`npm publish`; dist/ is not
// in git. Inside this repository, `roster/client` resolves to the sources instead (package.json
// `exports`, condition `roster-source`), so tests never run a stale build.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const OUT_DIR = join(ROOT, 'dist', 'client')
const TYPES_DIR = join(OUT_DIR, 'types')
const ENTRY_TYPES = join(TYPES_DIR, 'client', 'index.d.ts')

/** dist/client/index.js. The client imports the server's modules for their types only, so the
 *  bundle holds client/ alone; `packages: 'external'` leaves `ws` to the package's dependencies. */
async function bundle (outDir) {
  const esbuild = await import('esbuild')
  try {
    await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: ['client/index.ts'],
      outfile: join(outDir, 'index.js'),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'warning'
    })
  } finally {
    await esbuild.stop()
  }
}

/**
 * The declarations of client/index.ts and of every module its declarations import, found by
 * following their relative imports from the entry. Only those are written: the compiler also
 * declares the other modules it read, and one of them (server/gateway/schemas/common.ts, whose
 * `sharedSchemas` has a type that names TypeBox's unexported symbols) cannot be declared at
 * all; the client's declarations never import it, and the walk fails the build if they ever do.
 */
async function declarations (typesDir) {
  const { default: ts } = await import('typescript')
  const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'client', 'tsconfig.build.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')) }
  })
  const program = ts.createProgram({ rootNames: config.fileNames, options: { ...config.options, declarationDir: typesDir } })
  // Type errors fail the build; declaration errors are judged below, by whether they matter.
  const problems = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(), ...program.getSyntacticDiagnostics(), ...program.getSemanticDiagnostics()]
  if (problems.length > 0) throw new Error(format(ts, problems))
  const emitted = new Map()
  const result = program.emit(undefined, (file, text) => emitted.set(resolve(file), text), undefined, true)
  const entry = join(typesDir, 'client', 'index.d.ts')
  const needed = new Set()
  for (const queue = [entry]; queue.length > 0;) {
    const file = queue.pop()
    if (needed.has(file)) continue
    const text = emitted.get(file)
    if (text === undefined) {
      const why = format(ts, result.diagnostics)
      throw new Error(`the client's declarations need ${relative(typesDir, file)}, which the compiler did not write${why === '' ? '' : `:\n${why}`}`)
    }
    needed.add(file)
    for (const [, specifier] of text.matchAll(/(?:from\s+|import\()\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      queue.push(resolve(dirname(file), specifier.replace(/\.js$/, '.d.ts')))
    }
  }
  for (const file of needed) {
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, emitted.get(file))
  }
}

function format (ts, diagnostics) {
  return ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ROOT, getNewLine: () => '\n' })
}

// Built beside the old output and swapped in whole, so that a failed build leaves the last good
// one and a reader never sees half of one.
const staging = `${OUT_DIR}.${process.pid}.tmp`
rmSync(staging, { recursive: true, force: true })
try {
  await bundle(staging)
  await declarations(join(staging, 'types'))
  rmSync(OUT_DIR, { recursive: true, force: true })
  renameSync(staging, OUT_DIR)
} catch (err) {
  rmSync(staging, { recursive: true, force: true })
  throw err
}
console.log(`roster/client built: ${relative(ROOT, join(OUT_DIR, 'index.js'))}, ${relative(ROOT, ENTRY_TYPES)}`)
