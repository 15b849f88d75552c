/**
 * `npm run bench`: dpop-spa against the raw WebCrypto floor and its peers, in real headless
 * Chromium on http://localhost, plus the size budgets. Prints one table and saves it, with
 * every raw sample, to test/bench/results.json. `-- --docs` (or its old name `--readme`) also
 * refreshes the generated tables of docs/performance.md; `-- --rounds N` changes the number of
 * rounds.
 *
 * Method: all in-page cases run in every round, in an order rotated per round, in one page;
 * each figure is the median over rounds (min and max shown); each ratio is computed per
 * round against the floor measured in that same round, then the median of those is shown.
 * Nothing here asserts a time: a missed target is reported, not failed.
 */
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import esbuild from 'esbuild'
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify, base64url, type JWK } from 'jose'
import { chromium, type BrowserContext } from 'playwright-core'
import playwrightConfig from '../../playwright.config.ts'
import { launchDriver } from '../../e2e/driver.ts'
import { engineVersion, selectedEngines, type EngineName } from '../../e2e/engines.ts'
import type { EngineBenchSetup, EngineRound } from './engines-page.ts'
import type { BenchSetup, CallCounts, ProofSample, RoundResult } from './page.ts'
import type { ColdResult } from './cold.ts'
import { startBenchServer, type BenchFile } from './server.ts'
import {
  isInstalled,
  limitBytes,
  loadSizeChecks,
  measureGzip,
  bundleInputs,
  PEERS,
  ROOT,
  versionOf,
} from './size-checks.ts'
import { PORTS } from '../../e2e/ports.ts'

// ---------------------------------------------------------------- configuration

const args = process.argv.slice(2)
const argValue = (name: string) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : undefined
}
const ROUNDS = Number(argValue('--rounds') ?? 21)
const COLD_ROUNDS = Number(argValue('--cold-rounds') ?? 11)
/** Refresh the generated part of docs/performance.md (`--readme` is the flag's old name). */
const WRITE_DOCS = args.includes('--docs') || args.includes('--readme')
/** Only the per-engine proof bench (no Chromium-only cases, no sizes). */
const ENGINES_ONLY = args.includes('--engines-only')
const ENGINE_ROUNDS = Number(argValue('--engine-rounds') ?? 21)
/** WebKitWebDriver's port while the bench runs in WebKit. */
const BENCH_WEBDRIVER_PORT = PORTS.benchWebdriver
const STUB_URL = 'https://api.example.com/resource'

const b64u = (bytes: Uint8Array) => base64url.encode(bytes)
const randomB64u = (n: number) => b64u(crypto.getRandomValues(new Uint8Array(n)))
// A JWT-shaped access token of exactly 1024 characters; a 43-character nonce (32 random bytes).
const jwtPart = (o: object) => b64u(new TextEncoder().encode(JSON.stringify(o)))
const tokenHead = `${jwtPart({ typ: 'at+jwt', alg: 'ES256', kid: 'bench' })}.`
const TOKEN = `${tokenHead}${randomB64u(1024)}`.slice(0, 1024 - 87) + `.${randomB64u(64)}`
const NONCE = randomB64u(32)
const API_NONCE = randomB64u(32)

const setup: BenchSetup = {
  token: TOKEN,
  nonce: NONCE,
  apiNonce: API_NONCE,
  blocks: 8,
  seqOps: 16,
  inflightWaves: 1,
  idleSamples: 12,
  idleGapMs: 5,
  jsOps: 100,
  netSeqOps: 12,
  netConcurrentWaves: 1,
}

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`)

// ---------------------------------------------------------------- statistics

interface Stat {
  median: number
  min: number
  max: number
  values: number[]
}

function stat(values: readonly number[]): Stat {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (s.length === 0) return { median: NaN, min: NaN, max: NaN, values: [...values] }
  const m = s.length >> 1
  const median = s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
  return { median, min: s[0]!, max: s[s.length - 1]!, values: [...values] }
}

const paired = (a: readonly number[], b: readonly number[], f: (x: number, y: number) => number) =>
  a.map((x, i) => f(x, b[i]!))

// ---------------------------------------------------------------- table

interface Row {
  section: string
  name: string
  unit: string
  stat?: Stat
  /** Against the floor of the same round: ratio (×) or difference (+ms). */
  vs?: { kind: 'ratio' | 'diff'; of: string; stat: Stat }
  target?: string
  met?: boolean
  note?: string
  /** Per-round paired values, printed for the network pairs. */
  perRound?: number[]
}

function fmt(v: number, unit: string): string {
  if (!Number.isFinite(v)) return '–'
  if (unit === 'B') return `${Math.round(v)}`
  if (unit === 'calls') return Number.isInteger(v) ? `${v}` : v.toFixed(2)
  if (unit === 'ms') return v.toFixed(1)
  return v >= 100 ? v.toFixed(0) : v.toFixed(1)
}

function fmtVs(row: Row): string {
  if (!row.vs) return ''
  const { kind, stat: s } = row.vs
  if (kind === 'ratio') return `×${s.median.toFixed(2)} (${s.min.toFixed(2)}–${s.max.toFixed(2)})`
  const sign = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(1)}`
  return `${sign(s.median)} ms (${sign(s.min)}…${sign(s.max)})`
}

function cells(row: Row): string[] {
  return [
    row.name,
    row.stat ? fmt(row.stat.median, row.unit) : '',
    row.stat && row.stat.values.length > 1
      ? `${fmt(row.stat.min, row.unit)}–${fmt(row.stat.max, row.unit)}`
      : '',
    row.unit,
    fmtVs(row),
    row.target ?? '',
    row.met === undefined ? '' : row.met ? 'met' : 'MISSED',
    [
      row.note,
      row.perRound ? `rounds: ${row.perRound.map((x) => x.toFixed(2)).join(' ')}` : undefined,
    ]
      .filter(Boolean)
      .join('; '),
  ]
}

const HEAD = ['case', 'median', 'min–max', 'unit', 'vs baseline (min–max)', 'target', '', 'notes']

function textTable(rows: readonly Row[]): string {
  const body = rows.map(cells)
  const widths = HEAD.map((h, i) =>
    Math.max(h.length, ...body.map((c) => (i === HEAD.length - 1 ? 0 : c[i]!.length))),
  )
  const line = (c: readonly string[]) =>
    c
      .map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  const out: string[] = [line(HEAD)]
  let section = ''
  for (const [i, row] of rows.entries()) {
    if (row.section !== section) {
      section = row.section
      out.push('', `── ${section}`)
    }
    out.push(line(body[i]!))
  }
  return out.join('\n')
}

function markdownTable(rows: readonly Row[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|')
  const out: string[] = []
  let section = ''
  for (const row of rows) {
    if (row.section !== section) {
      section = row.section
      out.push(
        '',
        `**${section}**`,
        '',
        `| ${HEAD.map((h) => h || 'result').join(' | ')} |`,
        `|${HEAD.map(() => '---').join('|')}|`,
      )
    }
    out.push(`| ${cells(row).map(esc).join(' | ')} |`)
  }
  return out.join('\n').trim()
}

// ---------------------------------------------------------------- machine

function machine(chromiumVersion: string, userAgent: string, loadBefore: number[]) {
  let cpu = cpus()[0]?.model ?? 'unknown'
  let nproc = String(cpus().length)
  try {
    nproc = execFileSync('nproc', { encoding: 'utf8' }).trim()
  } catch {
    // keep os.cpus()
  }
  try {
    cpu =
      /model name\s*:\s*(.*)/.exec(
        execFileSync('cat', ['/proc/cpuinfo'], { encoding: 'utf8' }),
      )?.[1] ?? cpu
  } catch {
    // keep os.cpus()
  }
  // The 1-minute load average before and after: other processes on the machine show up as noise.
  const load = `${loadBefore[0]!.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`
  return {
    nproc,
    cpu,
    chromium: chromiumVersion,
    userAgent,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    load,
  }
}

// ---------------------------------------------------------------- bundles

async function bundlePages(): Promise<Map<string, BenchFile>> {
  const result = await esbuild.build({
    entryPoints: {
      bench: join(ROOT, 'test/bench/page.ts'),
      cold: join(ROOT, 'test/bench/cold.ts'),
      engines: join(ROOT, 'test/bench/engines-page.ts'),
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    // Minified like an app's production build; the bench measures run time, not parse time.
    minify: true,
    write: false,
    outdir: '/',
    logLevel: 'warning',
  })
  const files = new Map<string, BenchFile>()
  for (const f of result.outputFiles)
    files.set(f.path, { type: 'text/javascript', body: f.contents })
  const html = (script: string) => ({
    type: 'text/html',
    body: `<!doctype html><meta charset="utf-8"><title>dpop-spa bench</title><script type="module" src="${script}"></script>`,
  })
  files.set('/bench.html', html('/bench.js'))
  files.set('/cold.html', html('/cold.js'))
  files.set('/engines.html', html('/engines.js'))
  return files
}

// ---------------------------------------------------------------- verification (jose, not our code)

async function sha256b64u(value: string): Promise<string> {
  return b64u(
    new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(value))),
  )
}

async function verifyProof(
  proof: string,
  expect: { htm: string; htu: string; token: string; nonce: string; jkt: string },
  who: string,
) {
  const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
    typ: 'dpop+jwt',
    algorithms: ['ES256'],
  })
  const problems: string[] = []
  if (payload.htm !== expect.htm) problems.push('htm')
  if (payload.htu !== expect.htu) problems.push('htu')
  if (payload.ath !== (await sha256b64u(expect.token))) problems.push('ath')
  if (payload.nonce !== expect.nonce) problems.push('nonce')
  if (typeof payload.jti !== 'string' || payload.jti.length < 16) problems.push('jti')
  if (typeof payload.iat !== 'number' || Math.abs(payload.iat - Date.now() / 1000) > 120)
    problems.push('iat')
  if ((await calculateJwkThumbprint(protectedHeader.jwk as JWK)) !== expect.jkt)
    problems.push('jwk')
  if (problems.length)
    throw new Error(
      `${who}: its proof does not carry the benchmark's claims (${problems.join(', ')}); the numbers would compare different work.`,
    )
}

// ---------------------------------------------------------------- in-page cases

async function runPageCases(ctx: BrowserContext, origin: string) {
  const page = await ctx.newPage()
  page.on('pageerror', (e) => log(`page error: ${e.message}`))
  await page.goto(`${origin}/bench.html`)
  await page.waitForFunction(() => window.__bench !== undefined)
  const info = await page.evaluate((cfg) => window.__bench!.setup(cfg), setup)
  if (!info.crossOriginIsolated)
    log('warning: page is not cross-origin isolated; performance.now() is clamped to 100 µs')
  log(`${info.caseIds.length} cases × ${ROUNDS} rounds (+1 warm-up), order rotated per round`)
  await page.evaluate(() => window.__bench!.round(0)) // warm-up: JIT, connections, caches
  const rounds: RoundResult[] = []
  const started = Date.now()
  for (let r = 0; r < ROUNDS; r++) {
    rounds.push(await page.evaluate((i) => window.__bench!.round(i), r + 1))
    log(`round ${r + 1}/${ROUNDS} (${((Date.now() - started) / 1000).toFixed(0)} s)`)
  }
  const counts: CallCounts = await page.evaluate(() => window.__bench!.countCalls())
  const samples: ProofSample[] = await page.evaluate(() => window.__bench!.samples())
  await page.close()
  return { info, rounds, counts, samples }
}

// ---------------------------------------------------------------- cold start

async function coldLoad(ctx: BrowserContext, origin: string, mode: string): Promise<ColdResult> {
  // A new tab per sample: its performance.now() starts at its own navigation, and
  // closing it closes its IndexedDB connections before the next sample.
  const page = await ctx.newPage()
  try {
    await page.goto(`${origin}/cold.html?mode=${mode}`)
    await page.waitForFunction(() => window.__cold !== undefined)
    const result = await page.evaluate(() => window.__cold!)
    if (result.error) throw new Error(`cold start (${mode}): ${result.error}`)
    return result
  } finally {
    await page.close()
  }
}

async function runColdStart(ctx: BrowserContext, origin: string) {
  await coldLoad(ctx, origin, 'seed')
  const modes = ['floor', 'floor-sign', 'stored', 'first'] as const
  const measure = async (mode: (typeof modes)[number]) => {
    // The same kind of load before every sample (see cold.ts): IndexedDB used just before.
    await coldLoad(ctx, origin, mode === 'first' ? 'delete' : 'touch')
    return coldLoad(ctx, origin, mode)
  }
  for (const mode of modes) await measure(mode) // warm-up: HTTP cache, IndexedDB backend
  const out: Record<(typeof modes)[number], ColdResult[]> = {
    floor: [],
    'floor-sign': [],
    stored: [],
    first: [],
  }
  for (let r = 0; r < COLD_ROUNDS; r++) {
    const k = r % modes.length
    for (const mode of [...modes.slice(k), ...modes.slice(0, k)])
      out[mode].push(await measure(mode))
  }
  log(`cold start: ${COLD_ROUNDS} rounds × ${modes.length} page loads`)
  return out
}

// ---------------------------------------------------------------- every installed engine

const projectUse = (name: string) => playwrightConfig.projects?.find((p) => p.name === name)?.use

interface EngineResult {
  engine: EngineName
  version: string
  crossOriginIsolated: boolean
  rounds: EngineRound[]
}

/** createProof against the sign floor in each installed engine, through the same driver as the e2e suite. */
async function runEngineProofs(origin: string): Promise<EngineResult[]> {
  const out: EngineResult[] = []
  const config: EngineBenchSetup = {
    token: TOKEN,
    nonce: NONCE,
    blocks: 8,
    seqOps: 32,
    inflightWaves: 2,
  }
  for (const engine of selectedEngines()) {
    const use = projectUse(engine)
    const { driver, close } = await launchDriver(engine, {
      baseURL: origin,
      ...(use?.launchOptions ? { launchOptions: use.launchOptions } : {}),
      ...(use?.channel ? { channel: use.channel } : {}),
      webdriverPort: BENCH_WEBDRIVER_PORT,
    })
    try {
      const tab = driver.page
      await tab.goto('/engines.html')
      await tab.waitFor(() => window.__engineBench !== undefined)
      const info = await tab.evaluate((c) => window.__engineBench!.setup(c), config)
      if (!info.crossOriginIsolated)
        log(`warning: ${engine}: the page is not cross-origin isolated; its clock is coarse`)
      // The proof signs the benchmark's claims with the page's key (checked by jose, not our code).
      await verifyProof(
        info.proof,
        {
          htm: 'GET',
          htu: STUB_URL,
          token: TOKEN,
          nonce: NONCE,
          jkt: await calculateJwkThumbprint(info.publicJwk),
        },
        `${engine} createProof`,
      )
      const rounds: EngineRound[] = []
      for (let r = 0; r < ENGINE_ROUNDS; r++)
        rounds.push(await tab.evaluate((i) => window.__engineBench!.round(i), r))
      const version = engineVersion(engine) ?? info.userAgent
      log(`${version}: ${ENGINE_ROUNDS} rounds`)
      out.push({ engine, version, crossOriginIsolated: info.crossOriginIsolated, rounds })
    } finally {
      await close()
    }
  }
  return out
}

function engineRows(results: EngineResult[]): Row[] {
  const rows: Row[] = []
  const section =
    'Proof per engine: createProof (1 KB token + nonce) against a raw crypto.subtle.sign ES256 (µs per proof)'
  for (const { version, rounds, crossOriginIsolated } of results) {
    for (const [mode, label, target] of [
      ['seq', 'sequential', 1.25],
      ['c64', '64 in flight', 1.1],
    ] as const) {
      const ratio = stat(rounds.map((r) => r[mode] / r[`${mode}@base`]))
      rows.push({
        section,
        name: `${version}, ${label}: floor`,
        unit: 'µs',
        stat: stat(rounds.map((r) => r[`${mode}@base`])),
        ...(crossOriginIsolated ? {} : { note: 'not cross-origin isolated' }),
      })
      rows.push({
        section,
        name: `${version}, ${label}: createProof`,
        unit: 'µs',
        stat: stat(rounds.map((r) => r[mode])),
        vs: { kind: 'ratio', of: 'floor', stat: ratio },
        target: `≤ ×${target}`,
        met: ratio.median <= target,
      })
    }
  }
  return rows
}

async function enginesOnly() {
  const t0 = Date.now()
  const loadBefore = loadavg()
  const files = await bundlePages()
  const server = await startBenchServer({ files, nonce: API_NONCE })
  let results: EngineResult[]
  try {
    results = await runEngineProofs(server.origin)
  } finally {
    await server.close()
  }
  const rows = engineRows(results)
  const seconds = ((Date.now() - t0) / 1000).toFixed(0)
  process.stdout.write(
    `\ndpop-spa bench, every installed engine: ${ENGINE_ROUNDS} rounds; load ${loadBefore[0]!.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}; ${seconds} s\n\n${textTable(rows)}\n\n`,
  )
}

// ---------------------------------------------------------------- main

async function main() {
  const t0 = Date.now()
  const loadBefore = loadavg()

  // Sizes first, before the browser competes for the two cores.
  log('sizes: size-limit (esbuild, minified, gzip -9)')
  const checks = await loadSizeChecks()
  const installedPeers = PEERS.filter((p) => isInstalled(p.pkg))
  const sizes = await measureGzip([
    ...checks.map((c) => ({ name: c.name, imports: c.import, ignore: c.ignore })),
    ...installedPeers.map((p) => ({ name: p.pkg, imports: { [p.pkg]: p.imports } })),
  ])
  const bundled = await Promise.all(
    checks.map(async (c) => ({ name: c.name, inputs: (await bundleInputs(c.import)).inputs })),
  )

  const files = await bundlePages()
  const server = await startBenchServer({ files, nonce: API_NONCE })
  const userDataDir = await mkdtemp(join(tmpdir(), 'dpop-spa-bench-'))
  const launch = projectUse('chromium')?.launchOptions ?? {}
  // A persistent profile, so IndexedDB lives on disk as in a real browser (not in memory).
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    headless: true,
    ...(launch.executablePath ? { executablePath: launch.executablePath } : {}),
    args: launch.args ?? [],
  })

  let page: Awaited<ReturnType<typeof runPageCases>>
  let cold: Awaited<ReturnType<typeof runColdStart>>
  let stats: typeof server.stats
  let chromiumVersion = ''
  try {
    chromiumVersion = ctx.browser()?.version() ?? ''
    page = await runPageCases(ctx, server.origin)
    stats = structuredClone(server.stats) // what the network cases sent, before the cold start adds to it
    cold = await runColdStart(ctx, server.origin)
  } finally {
    await ctx.close()
    await rm(userDataDir, { recursive: true, force: true })
  }
  let engines: EngineResult[]
  try {
    engines = await runEngineProofs(server.origin)
  } finally {
    await server.close()
  }

  // Every implementation must have signed the same claims with the same key, checked by jose.
  const jkt = await calculateJwkThumbprint(page.info.publicJwk)
  for (const s of page.samples)
    await verifyProof(
      s.proof,
      { htm: 'GET', htu: STUB_URL, token: TOKEN, nonce: NONCE, jkt },
      s.impl,
    )
  if (!stats.last) throw new Error('the API never received a signed request')
  await verifyProof(
    stats.last.proof,
    { htm: 'GET', htu: `${server.origin}/api/resource`, token: TOKEN, nonce: API_NONCE, jkt },
    'signed fetch (localhost)',
  )
  if (stats.last.authorization !== `DPoP ${TOKEN}`)
    throw new Error(
      'signed fetch (localhost): the API did not receive "Authorization: DPoP <token>"',
    )
  // Signed: the signed fetch and the no-library baseline; bearer: the baseline of both pairs.
  const expectedSigned =
    ROUNDS * (setup.blocks / 2) * (2 * setup.netSeqOps + setup.netConcurrentWaves * 32)
  if (stats.signed < expectedSigned || stats.bearer < expectedSigned || stats.other !== 0) {
    throw new Error(
      `the API saw ${stats.signed} signed, ${stats.bearer} bearer and ${stats.other} other requests; expected at least ${expectedSigned} of each and no other`,
    )
  }

  // ------------------------------------------------------------ rows
  const series = (id: string) => page.rounds.map((r) => r[id] ?? NaN)
  const rows: Row[] = []
  const floorBytes = page.info.floorInputLength
  const impls: [string, string][] = [
    ['ours', 'dpop-spa createProof, 1 KB token + nonce'],
    ['ours-notoken', 'dpop-spa createProof, no token, nonce'],
    ['dpop', `dpop ${(await versionOf('dpop')) ?? ''} generateProof`],
    [
      'o4w',
      `oauth4webapi ${(await versionOf('oauth4webapi')) ?? ''} DPoP (protectedResourceRequest, stub fetch)`,
    ],
  ]
  const modes: [string, string, number | undefined][] = [
    ['seq', 'Proof, sequential (µs per proof)', 1.25],
    ['c64', 'Proof, 64 in flight (µs per proof)', 1.1],
    [
      'idle',
      `Proof after ${setup.idleGapMs} ms idle (µs, median of ${setup.idleSamples} per round)`,
      undefined,
    ],
  ]
  // The floor of a mode: per round, the median of the floor blocks measured beside each case.
  const floorOf = (mode: string) =>
    page.rounds.map(
      (r) =>
        stat(
          Object.entries(r)
            .filter(([k]) => k.startsWith(`${mode}:`) && k.endsWith('@base'))
            .map(([, v]) => v),
        ).median,
    )
  const vsBase = (id: string) =>
    stat(page.rounds.map((r) => (r[id] ?? NaN) / (r[`${id}@base`] ?? NaN)))
  for (const [mode, section, target] of modes) {
    rows.push({
      section,
      name: `floor: crypto.subtle.sign ES256, ${floorBytes} B input`,
      unit: 'µs',
      stat: stat(floorOf(mode)),
      note: 'measured in the blocks beside each case',
    })
    for (const [id, label] of impls) {
      const ratio = vsBase(`${mode}:${id}`)
      const ours = id.startsWith('ours')
      rows.push({
        section,
        name: label,
        unit: 'µs',
        stat: stat(series(`${mode}:${id}`)),
        vs: { kind: 'ratio', of: 'floor', stat: ratio },
        ...(ours && target !== undefined
          ? { target: `≤ ×${target}`, met: ratio.median <= target }
          : {}),
      })
    }
  }

  // What each library's own JavaScript costs, with the signature itself taken out.
  const jsSection =
    'JS work per operation: crypto.subtle.sign stubbed to resolve at once (µs; other WebCrypto calls real)'
  for (const [id, label] of [
    ...impls,
    ['fetch', 'dpop-spa createDPoPFetch (stub fetch)'],
  ] as const) {
    rows.push({ section: jsSection, name: label, unit: 'µs', stat: stat(series(`js:${id}`)) })
  }

  // WebCrypto calls per proof (counted, not timed): what an idle gap makes expensive.
  const callSection = 'WebCrypto calls per proof (counted by wrapping SubtleCrypto)'
  const callImpls: [string, string][] = [...impls, ['fetch', 'dpop-spa signed fetch (stub fetch)']]
  for (const [id, label] of callImpls) {
    const warm = page.counts.warm[id]
    const fresh = page.counts.newToken[id]
    const ours = id === 'ours' || id === 'fetch'
    const note =
      fresh === undefined ? 'token already seen' : `${fresh} with a token never seen before`
    rows.push({
      section: callSection,
      name: label,
      unit: 'calls',
      stat: stat([warm ?? NaN]),
      note,
      ...(ours
        ? { target: 'sign only; +1 digest once per token', met: warm === 1 && fresh === 2 }
        : {}),
    })
  }

  const fetchSection = 'Signed fetch, stub underlying fetch (µs per request)'
  for (const mode of ['seq', 'c64', 'idle'] as const) {
    const ratio = vsBase(`${mode}:fetch`)
    const vsO4w = stat(paired(series(`${mode}:fetch`), series(`${mode}:o4w`), (a, b) => a / b))
    rows.push({
      section: fetchSection,
      name: `dpop-spa createDPoPFetch, ${mode === 'seq' ? 'sequential' : mode === 'c64' ? '64 in flight' : `after ${setup.idleGapMs} ms idle`}`,
      unit: 'µs',
      stat: stat(series(`${mode}:fetch`)),
      vs: { kind: 'ratio', of: 'floor', stat: ratio },
      note: `×${vsO4w.median.toFixed(2)} of oauth4webapi's protectedResourceRequest (same stub)`,
      ...(mode === 'seq' ? { target: '≤ ×1.35', met: ratio.median <= 1.35 } : {}),
    })
  }

  const netSection =
    'Signed fetch vs Authorization: Bearer, localhost server (µs per request; blocks ABBA, paired per round)'
  for (const [id, label, target] of [
    ['net-seq', 'sequential', 1.05],
    ['net-c32', '32 concurrent', undefined],
  ] as const) {
    const ratios = page.rounds.map((r) => (r[id] ?? NaN) / (r[`${id}@base`] ?? NaN))
    rows.push({
      section: netSection,
      name: `fetch + Bearer, ${label}`,
      unit: 'µs',
      stat: stat(series(`${id}@base`)),
    })
    if (id === 'net-seq') {
      const raw = page.rounds.map((r) => (r['net-seq-raw'] ?? NaN) / (r['net-seq-raw@base'] ?? NaN))
      rows.push({
        section: netSection,
        name: 'no library: crypto.subtle.sign + fetch with DPoP headers, sequential',
        unit: 'µs',
        stat: stat(series('net-seq-raw')),
        vs: { kind: 'ratio', of: 'bearer', stat: stat(raw) },
        perRound: raw,
        note: 'the cost of DPoP itself on this machine',
      })
    }
    rows.push({
      section: netSection,
      name: `dpop-spa signed fetch, ${label}`,
      unit: 'µs',
      stat: stat(series(id)),
      vs: { kind: 'ratio', of: 'bearer', stat: stat(ratios) },
      perRound: ratios,
      ...(target !== undefined
        ? { target: `≤ ×${target}`, met: stat(ratios).median <= target }
        : {}),
    })
  }

  const coldSection =
    'Cold start (ms from navigation start; a fresh tab per load, same bundle for every mode)'
  // Differences use the time from script start: page and bundle loading are the same work
  // in every mode, and their noise would otherwise swamp a 10 ms budget.
  const work = (c: ColdResult) => c.t - c.scriptStart
  const floorWork = cold.floor.map(work)
  rows.push({
    section: coldSection,
    name: 'floor: raw IndexedDB open + get of a CryptoKeyPair',
    unit: 'ms',
    stat: stat(cold.floor.map((c) => c.t)),
    note: `from script start: ${stat(floorWork).median.toFixed(1)} ms`,
  })
  rows.push({
    section: coldSection,
    name: 'floor + raw exportKey + sign (no library code)',
    unit: 'ms',
    stat: stat(cold['floor-sign'].map((c) => c.t)),
    vs: {
      kind: 'diff',
      of: 'floor',
      stat: stat(paired(cold['floor-sign'].map(work), floorWork, (a, b) => a - b)),
    },
    note: 'the WebCrypto any DPoP client needs before its first proof',
  })
  const storedDiff = stat(paired(cold.stored.map(work), floorWork, (a, b) => a - b))
  rows.push({
    section: coldSection,
    name: 'first signed request leaves the page, key from IndexedDB',
    unit: 'ms',
    stat: stat(cold.stored.map((c) => c.t)),
    vs: { kind: 'diff', of: 'floor', stat: storedDiff },
    target: '≤ floor + 10 ms',
    met: storedDiff.median <= 10,
    note: 'openKeyStore + createDPoPFetch; difference from script start, paired per round',
  })
  rows.push({
    section: coldSection,
    name: 'first-ever start: key generated and stored, first request',
    unit: 'ms',
    stat: stat(cold.first.map((c) => c.t)),
    vs: {
      kind: 'diff',
      of: 'floor',
      stat: stat(paired(cold.first.map(work), floorWork, (a, b) => a - b)),
    },
  })
  rows.push({
    section: coldSection,
    name: 'script start (every mode)',
    unit: 'ms',
    stat: stat(
      Object.values(cold)
        .flat()
        .map((c) => c.scriptStart),
    ),
  })

  const sizeSection = 'Size (minified + gzip -9, size-limit preset-small-lib, bytes)'
  const SIZE_GOALS: Record<string, number> = { '(a)': 1200, '(b)': 2500, '(c)': 11000 }
  const full = sizes.get(checks.find((c) => c.name.startsWith('(c)'))!.name)
  for (const c of checks) {
    const size = sizes.get(c.name)!
    const inputs = bundled.find((b) => b.name === c.name)!.inputs
    const pulled = ['oauth4webapi', 'idb-keyval'].filter((p) =>
      inputs.some((i) => i.includes(`node_modules/${p}/`)),
    )
    // The target is the project's (issue) goal; the .size-limit.json budget is a regression
    // guard at today's size, which `npm test` enforces.
    const goal = SIZE_GOALS[c.name.slice(0, 3)]
    const budget = limitBytes(c.limit)
    rows.push({
      section: sizeSection,
      name: `dpop-spa ${c.name}`,
      unit: 'B',
      stat: stat([size]),
      ...(goal === undefined ? {} : { target: `≤ ${goal} B`, met: size <= goal }),
      note: `${c.import[Object.keys(c.import)[0]!]}; packages in bundle: ${pulled.join(', ') || 'none'}; npm test budget ${budget} B`,
    })
  }
  for (const p of PEERS) {
    const size = sizes.get(p.pkg)
    rows.push({
      section: sizeSection,
      name: `${p.pkg} ${(await versionOf(p.pkg)) ?? ''}`.trim(),
      unit: 'B',
      stat: stat([size ?? NaN]),
      note:
        size === undefined
          ? 'not installed: skipped'
          : `import ${p.imports}; ×${(size / full!).toFixed(1)} of dpop-spa (c)`,
    })
  }

  rows.push(...engineRows(engines))

  // ------------------------------------------------------------ output
  const env = machine(chromiumVersion || page.info.userAgent, page.info.userAgent, loadBefore)
  const table = textTable(rows)
  const seconds = ((Date.now() - t0) / 1000).toFixed(0)
  process.stdout.write(
    `\ndpop-spa bench: ${ROUNDS} rounds, ${COLD_ROUNDS} cold-start rounds; Chromium ${env.chromium}; ${env.nproc} × ${env.cpu}; load ${env.load}; ${seconds} s\n\n${table}\n\n`,
  )
  const missed = rows.filter((r) => r.met === false).map((r) => `${r.section}: ${r.name}`)
  process.stdout.write(
    missed.length
      ? `Targets missed (${missed.length}):\n${missed.map((m) => `  - ${m}`).join('\n')}\n`
      : 'All targets met.\n',
  )

  const results = {
    date: new Date().toISOString(),
    machine: env,
    config: {
      ...setup,
      token: `${TOKEN.length} chars`,
      nonce: `${NONCE.length} chars`,
      apiNonce: `${API_NONCE.length} chars`,
      rounds: ROUNDS,
      coldRounds: COLD_ROUNDS,
    },
    rows,
    raw: {
      rounds: page.rounds,
      engines,
      cold,
      counts: page.counts,
      signingInputLength: Object.fromEntries(
        page.samples.map((s) => [s.impl, s.signingInputLength]),
      ),
      floorInputLength: floorBytes,
      server: { signed: stats.signed, bearer: stats.bearer, other: stats.other },
      sizes: Object.fromEntries(sizes),
    },
    markdown: markdownTable(rows),
  }
  await writeFile(join(ROOT, 'test/bench/results.json'), `${JSON.stringify(results, null, 2)}\n`)
  log(`saved test/bench/results.json (${seconds} s)`)

  if (WRITE_DOCS) {
    const file = join(ROOT, 'docs/performance.md')
    const text = await readFile(file, 'utf8')
    const generated = [
      '<!-- bench:generated:start -->',
      `Measured ${results.date.slice(0, 10)} on ${env.nproc} × ${env.cpu}, ${env.platform}, Chromium ${env.chromium} (headless), Node ${env.node}; ${ROUNDS} rounds, ${COLD_ROUNDS} cold-start rounds; 1-minute load average ${env.load}.`,
      '',
      markdownTable(rows),
      '<!-- bench:generated:end -->',
    ].join('\n')
    const next = text.replace(
      /<!-- bench:generated:start -->[\s\S]*<!-- bench:generated:end -->/,
      generated,
    )
    if (next === text && !text.includes(generated))
      throw new Error('docs/performance.md has no bench:generated markers')
    await writeFile(file, next)
    log('refreshed the tables in docs/performance.md')
  }
}

;(ENGINES_ONLY ? enginesOnly() : main()).catch((e: unknown) => {
  process.stderr.write(
    `[bench] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
  )
  process.exitCode = 1
})
