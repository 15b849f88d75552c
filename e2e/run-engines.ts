/**
 * `npm run test:browser`: runs the Playwright suite in every browser engine installed here
 * (one project per engine, see playwright.config.ts) and says first which engines it runs
 * and which it skips, and why. Arguments are passed on to `playwright test`
 * (`npm run test:browser -- e2e/tokens.spec.ts`). `DPOP_TEST_ENGINES=firefox` runs one engine.
 * Exits non-zero when no engine at all can run, so a bare machine does not pass silently.
 */
import { spawnSync } from 'node:child_process'
import { detectEngines, selectedEngines } from './engines.ts'

const engines = detectEngines()
const selected = selectedEngines()
for (const e of engines) {
  if (selected.includes(e.name)) console.log(`browser tests: ${e.name.padEnd(8)} runs   (${e.executable})`)
  else if (e.missing) console.log(`browser tests: ${e.name.padEnd(8)} SKIPPED: ${e.missing}`)
  else console.log(`browser tests: ${e.name.padEnd(8)} SKIPPED: not in DPOP_TEST_ENGINES=${process.env.DPOP_TEST_ENGINES}`)
}
if (selected.length === 0) {
  console.error('browser tests: no browser engine to run; install one (see CONTRIBUTING.md, Development)')
  process.exit(1)
}
const result = spawnSync('npx', ['playwright', 'test', ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(result.status ?? 1)
