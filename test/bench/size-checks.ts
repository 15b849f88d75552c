/**
 * Size budgets, measured the way `npm run size` measures them: the checks in
 * .size-limit.json run through size-limit's own esbuild + gzip pipeline, and the peers
 * go through the very same pipeline (an `import { X } from 'pkg'` entry, minified, gzip -9),
 * so every figure in the bench table is comparable. Also bundles an entry with esbuild's
 * metafile to see which packages it pulled in.
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import esbuild from 'esbuild'
import sizeLimit from 'size-limit'
import smallLib from '@size-limit/preset-small-lib'

/** The project root (two levels above this file). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** One check of .size-limit.json (the fields this project uses). */
export interface SizeCheck {
  name: string
  path: string
  import: Record<string, string>
  /** Packages left out of the measurement (a peer dependency such as react). */
  ignore?: string[]
  gzip: true
  limit: string
}

/** A peer SDK measured for comparison, as an app imports it. */
export interface Peer {
  /** npm package name. */
  pkg: string
  /** What an app imports to get a working client. */
  imports: string
}

/** The peers of the size comparison and what an app imports from each to log a user in. */
export const PEERS: readonly Peer[] = [
  { pkg: '@auth0/auth0-spa-js', imports: '{ createAuth0Client }' },
  { pkg: 'oidc-client-ts', imports: '{ UserManager }' },
  { pkg: '@okta/okta-auth-js', imports: '{ OktaAuth }' },
  { pkg: '@axa-fr/oidc-client', imports: '{ OidcClient }' },
]

/** Reads .size-limit.json. */
export async function loadSizeChecks(): Promise<SizeCheck[]> {
  return JSON.parse(await readFile(join(ROOT, '.size-limit.json'), 'utf8')) as SizeCheck[]
}

/** Bytes of a size-limit limit such as "1.2 kB" (size-limit's units: kB = 1000 B). */
export function limitBytes(limit: string): number {
  const m = /^([\d.]+)\s*(B|kB|KB|KiB)$/.exec(limit.trim())
  if (!m) throw new Error(`unsupported limit ${limit}`)
  const n = Number(m[1])
  return Math.round(m[2] === 'B' ? n : m[2] === 'KiB' ? n * 1024 : n * 1000)
}

/** The import statement size-limit generates for a check, with paths made absolute. */
export function entrySource(imports: Record<string, string>): string {
  let src = ''
  for (const [from, what] of Object.entries(imports)) {
    const spec = from.startsWith('.') ? join(ROOT, from) : from
    src += `import ${what} from ${JSON.stringify(spec)}\nconsole.log(${what.replace(/[{}]/g, '').trim()})\n`
  }
  return src
}

/** Whether a package can be resolved from the project (a peer may not be installed). */
export function isInstalled(pkg: string): boolean {
  try {
    createRequire(join(ROOT, 'package.json')).resolve(`${pkg}/package.json`)
    return true
  } catch {
    try {
      createRequire(join(ROOT, 'package.json')).resolve(pkg)
      return true
    } catch {
      return false
    }
  }
}

/** Installed version of a package, or undefined. */
export async function versionOf(pkg: string): Promise<string | undefined> {
  try {
    const json = JSON.parse(
      await readFile(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8'),
    ) as { version?: string }
    return json.version
  } catch {
    return undefined
  }
}

/**
 * Minified + gzip bytes of each import set, through size-limit's preset-small-lib
 * (the same esbuild options and the same empty-project correction as `npm run size`).
 */
export async function measureGzip(
  entries: readonly {
    name: string
    imports: Record<string, string>
    ignore?: string[] | undefined
  }[],
): Promise<Map<string, number>> {
  const nodeModules = join(ROOT, 'node_modules')
  const checks = entries.map((e) => ({
    name: e.name,
    // Replaced by the generated entry; size-limit sizes process.setMaxListeners by it.
    files: [join(ROOT, 'src/index.ts')],
    gzip: true,
    // size-limit makes every key of `import` absolute except peers; bare package names
    // resolve here from the project's node_modules, as in an app.
    import: Object.fromEntries(
      Object.entries(e.imports).map(([k, v]) => [k.startsWith('.') ? join(ROOT, k) : k, v]),
    ),
    ...(e.ignore ? { ignore: e.ignore } : {}),
    modifyEsbuildConfig: (config: Record<string, unknown>) => ({
      ...config,
      nodePaths: [nodeModules],
      logLevel: 'silent',
    }),
  }))
  // size-limit types its first argument as functions; it takes plugin objects (see its index.js).
  const maxListeners = process.getMaxListeners()
  const results = (await sizeLimit(smallLib as unknown as Parameters<typeof sizeLimit>[0], {
    checks,
  })) as { size: number }[]
  process.setMaxListeners(maxListeners)
  return new Map(entries.map((e, i) => [e.name, results[i]!.size]))
}

/**
 * Bundles an import set with size-limit's esbuild options and returns the input files
 * that put code into the bundle (parsed but tree-shaken files are not listed).
 */
export async function bundleInputs(
  imports: Record<string, string>,
): Promise<{ inputs: string[]; code: string }> {
  const result = await esbuild.build({
    stdin: { contents: entrySource(imports), resolveDir: ROOT, loader: 'js' },
    bundle: true,
    minifyIdentifiers: true,
    minifySyntax: true,
    minifyWhitespace: true,
    treeShaking: true,
    metafile: true,
    write: false,
    logLevel: 'silent',
  })
  const inputs = Object.values(result.metafile.outputs).flatMap((o) =>
    Object.entries(o.inputs)
      .filter(([, v]) => v.bytesInOutput > 0)
      .map(([k]) => k),
  )
  return { inputs, code: result.outputFiles[0]?.text ?? '' }
}
