/**
 * What `npm pack` would publish: dist/ (JavaScript, source maps, declarations), README.md,
 * LICENSE, CHANGELOG.md and package.json, and nothing else (no tests, demo, sources, configs,
 * stray files). Every file `exports` points at must be in it. Run by `npm run check:package`
 * after `npm run build`; exits 1 and names each problem.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

interface PackFile {
  path: string
  size: number
}
interface PackResult {
  name: string
  version: string
  size: number
  unpackedSize: number
  files: PackFile[]
}

const [result] = JSON.parse(
  execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' }),
) as PackResult[]
if (!result) throw new Error('npm pack --dry-run --json printed no result')
const paths = result.files.map((f) => f.path).sort()

const TOP_LEVEL = new Set(['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md'])
// dist/ holds only what the build writes: entry points, shared chunks, their maps, declarations
// (those of the internal modules sit in their part's folder, as in src/).
const DIST = /^dist\/(?:(?:chunks|[a-z-]+)\/)?[A-Za-z0-9_-]+(?:\.js|\.js\.map|\.d\.ts)$/
const problems: string[] = []
for (const path of paths) {
  if (!TOP_LEVEL.has(path) && !DIST.test(path))
    problems.push(`unexpected file in the package: ${path}`)
}
for (const required of TOP_LEVEL)
  if (!paths.includes(required)) problems.push(`missing from the package: ${required}`)

// What users install: the two runtime dependencies, nothing else. The Node binary and atproto's
// server of the browser suite live in the e2e/atproto workspace, which npm never installs for them.
{
  const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as Record<
    string,
    Record<string, string> | undefined
  >
  const installed = [
    ...Object.keys(manifest.dependencies ?? {}),
    ...Object.keys(manifest.optionalDependencies ?? {}),
  ].sort()
  if (installed.join() !== 'idb-keyval,oauth4webapi')
    problems.push(
      `users would install ${installed.join(', ')}; only idb-keyval and oauth4webapi belong there`,
    )
}

// Every target of "exports" (and main/types) ships.
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
  main: string
  types: string
  exports: Record<string, string | Record<string, string>>
}
const targets = [
  pkg.main,
  pkg.types,
  ...Object.values(pkg.exports).flatMap((v) => (typeof v === 'string' ? [v] : Object.values(v))),
]
for (const target of targets) {
  const path = target.replace(/^\.\//, '')
  if (!paths.includes(path)) problems.push(`"${target}" (package.json) is not in the package`)
}
// The bindings stay out of the core: only dist/react.js may import react, only dist/vue.js vue.
for (const framework of ['react', 'vue']) {
  const importOf = new RegExp(`from\\s*["']${framework}["']|import\\(["']${framework}["']\\)`)
  for (const path of paths.filter((p) => p.endsWith('.js') && p !== `dist/${framework}.js`)) {
    if (importOf.test(readFileSync(path, 'utf8'))) problems.push(`${path} imports ${framework}`)
  }
}

if (problems.length > 0) {
  for (const p of problems) console.error(`pack check: ${p}`)
  process.exit(1)
}
console.log(
  `pack check: ${result.name}@${result.version}, ${paths.length} files, ${result.size} B packed, ${result.unpackedSize} B unpacked: ${paths.join(', ')}`,
)
