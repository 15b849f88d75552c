/**
 * `npm run test:browser`: runs the Playwright suite in every browser engine installed here
 * (one project per engine, see playwright.config.ts) and says first which engines it runs
 * and which it skips, and why. Arguments are passed on to `playwright test`
 * (`npm run test:browser -- e2e/tokens.spec.ts`). `DPOP_TEST_ENGINES=firefox` runs one engine.
 * Exits non-zero when no engine at all can run, so a bare machine does not pass silently.
 *
 * Chromium and Firefox run at once, each in its own `playwright test` with its own servers on
 * its own ports (the second run's test ports moved by {@link SECOND_RUN_PORT_OFFSET}), output
 * folder (`test-results/<engine>/`) and Vite cache, so neither sees the other's server state
 * (the tests flip switches on their servers); WebKit runs after them, alone. Most of a browser
 * test is waiting (token lifetimes, held answers, page loads), so the two runs share two cores
 * well. `DPOP_TEST_SERIAL=1` runs one `playwright test` for all engines.
 */
import { spawn } from 'node:child_process'
import { detectEngines, selectedEngines, type EngineName } from './engines.ts'
import { atprotoRuntime } from './atproto/runtime.ts'
import { PORT_VARIABLES } from './ports.ts'

/** How far the second run's ports sit from the first's (no test port is within it of another). */
export const SECOND_RUN_PORT_OFFSET = 3000

const engines = detectEngines()
const selected = selectedEngines()
for (const e of engines) {
  if (selected.includes(e.name))
    console.log(`browser tests: ${e.name.padEnd(8)} runs   (${e.executable})`)
  else if (e.missing) console.log(`browser tests: ${e.name.padEnd(8)} SKIPPED: ${e.missing}`)
  else
    console.log(
      `browser tests: ${e.name.padEnd(8)} SKIPPED: not in DPOP_TEST_ENGINES=${process.env.DPOP_TEST_ENGINES}`,
    )
}
const atproto = atprotoRuntime()
if ('node' in atproto)
  console.log(
    `browser tests: atproto  runs   (its server on Node ${atproto.version}: ${atproto.node})`,
  )
else console.log(`browser tests: atproto  SKIPPED: ${atproto.missing}`)
if (selected.length === 0) {
  console.error(
    'browser tests: no browser engine to run; install one (see CONTRIBUTING.md, Development)',
  )
  process.exit(1)
}

// Phases run one after the other; the runs of a phase at once. Chromium and Firefox together,
// then WebKit alone: WebKitGTK (MiniBrowser under Xvfb, service workers) misses its 60 s test
// bounds when it shares the two cores with another engine's run.
const split = process.env.DPOP_TEST_SERIAL !== '1' && selected.length > 1
const phases: EngineName[][][] = split
  ? [
      selected.filter((e) => e !== 'webkit').map((e) => [e]),
      selected.filter((e) => e === 'webkit').map((e) => [e]),
    ].filter((phase) => phase.length > 0)
  : [[selected]]

/** One `playwright test` for `group`; the n-th run of a phase has its own ports and Vite cache. */
function run(group: EngineName[], n: number): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env, DPOP_TEST_ENGINES: group.join(',') }
  // Each run empties its own output folder when it starts, so none is another's parent.
  if (split) env.DPOP_TEST_OUTPUT_DIR = `test-results/${group.join('-')}`
  if (n > 0) {
    for (const [variable, value] of PORT_VARIABLES)
      env[variable] = String(value + n * SECOND_RUN_PORT_OFFSET)
    env.DPOP_TEST_VITE_CACHE = `node_modules/.vite-run-${n + 1}`
  }
  if (split) console.log(`browser tests: starting ${group.join(', ')}`)
  return new Promise((resolve) => {
    const child = spawn('npx', ['playwright', 'test', ...process.argv.slice(2)], {
      stdio: 'inherit',
      env,
    })
    child.on('error', () => resolve(1))
    child.on('exit', (code) => resolve(code ?? 1))
  })
}

const started = Date.now()
const results: [EngineName[], number][] = []
for (const phase of phases) {
  const codes = await Promise.all(phase.map(run))
  phase.forEach((group, i) => results.push([group, codes[i]!]))
}
const codes = results.map(([, code]) => code)
if (split) {
  for (const [group, code] of results)
    console.log(
      `browser tests: ${group.join(', ')}: ${code === 0 ? 'passed' : `FAILED (exit ${code})`}`,
    )
  console.log(`browser tests: ${((Date.now() - started) / 60_000).toFixed(1)} min in all`)
}
process.exit(codes.find((c) => c !== 0) ?? 0)
