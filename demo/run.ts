/**
 * `npm run demo`: one command starts the whole demo on loopback, a real authorization
 * server (oidc-provider), the verifying API (jose) and the SPA (Vite), and prints the one
 * URL to open. Ctrl-C (SIGINT) or SIGTERM closes all three.
 *
 * Environment:
 * - `DPOP_DEMO_PORT` (5173): the SPA, served by Vite.
 * - `DPOP_DEMO_AS_PORT` (5310): the authorization server.
 * - `DPOP_DEMO_API_PORT` (5301): the API.
 * - `DPOP_DEMO_ACCESS_TTL` (60): access token lifetime in seconds; short enough that a
 *   refresh shows up while you watch, and the e2e test sets it lower still.
 * - `DPOP_DEMO_VERBOSE` (unset): when set, the servers print one line per request (never a token).
 *
 * The SPA learns the three origins from this launcher (Vite `define`), never from
 * hard-coded ports, so any port combination works.
 */
import { createServer as createNetServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createServer as createViteServer, type ViteDevServer } from 'vite'
import { startApiServer, type ApiServer } from './api/server.ts'
import { startAuthServer, type AuthServerHandle } from './auth-server/server.ts'
import type { DemoConfig } from './config.ts'

/** Environment variables the launcher reads. */
export const DEMO_ENV = {
  port: 'DPOP_DEMO_PORT',
  asPort: 'DPOP_DEMO_AS_PORT',
  apiPort: 'DPOP_DEMO_API_PORT',
  accessTtl: 'DPOP_DEMO_ACCESS_TTL',
} as const

/** Options of {@link startDemo}; each defaults to its environment variable, then to {@link DEMO_DEFAULTS}. */
export interface DemoOptions {
  /** Port of the SPA. @default 5173 */
  port?: number
  /** Port of the authorization server. @default 5310 */
  asPort?: number
  /** Port of the API. @default 5301 */
  apiPort?: number
  /** Access token lifetime, seconds. @default 60 */
  accessTokenTtl?: number
  /** Receives the servers' one-line request logs; omit for silence. */
  log?: ((line: string) => void) | undefined
}

/** Defaults of {@link DemoOptions}. */
export const DEMO_DEFAULTS = {
  port: 5173,
  asPort: 5310,
  apiPort: 5301,
  accessTokenTtl: 60,
} as const

/** The running demo. */
export interface Demo {
  /** The one URL to open: the SPA. */
  url: string
  /** What the SPA was told. */
  config: DemoConfig
  /** Closes the SPA server, the API and the authorization server. Never rejects. */
  close(): Promise<void>
}

/** A port that is already taken; `envVar` names the variable that moves it. */
export class PortInUseError extends Error {
  /** Creates the error for `port`, naming `envVar`. */
  constructor(
    readonly port: number,
    readonly envVar: string,
    options?: { cause?: unknown },
  ) {
    super(
      `port ${port} is in use; set ${envVar} to another port (for example ${envVar}=${port + 1000} npm run demo)`,
      options,
    )
    this.name = 'PortInUseError'
  }
}

const HOST = 'localhost'
const here = dirname(fileURLToPath(import.meta.url))
const projectRoot = join(here, '..')

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max)
    throw new TypeError(
      `${name} must be an integer from ${min} to ${max}; got ${JSON.stringify(raw)}`,
    )
  return value
}

/** The options with environment fallbacks and defaults applied. @throws {TypeError} for a malformed variable. */
export function demoOptionsFromEnv(): Required<Omit<DemoOptions, 'log'>> {
  return {
    port: intFromEnv(DEMO_ENV.port, DEMO_DEFAULTS.port, 1, 65_535),
    asPort: intFromEnv(DEMO_ENV.asPort, DEMO_DEFAULTS.asPort, 1, 65_535),
    apiPort: intFromEnv(DEMO_ENV.apiPort, DEMO_DEFAULTS.apiPort, 1, 65_535),
    accessTokenTtl: intFromEnv(DEMO_ENV.accessTtl, DEMO_DEFAULTS.accessTokenTtl, 1, 86_400),
  }
}

/**
 * Resolves when `port` is free on `host`. A probe before anything starts, so that a busy
 * port stops the demo before half of it is running (the servers' own errors still count:
 * the port can be taken between the probe and the listen).
 */
function probe(port: number, host: string, envVar: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createNetServer()
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE' || error.code === 'EACCES'
          ? new PortInUseError(port, envVar, { cause: error })
          : error,
      )
    })
    server.listen(port, host, () => server.close(() => resolve()))
  })
}

const isInUse = (error: unknown): boolean =>
  (error as { code?: unknown } | null)?.code === 'EADDRINUSE' ||
  (error instanceof Error && /already in use|is in use/.test(error.message))

/**
 * Starts the authorization server, the API and the SPA, in that order.
 *
 * @throws {PortInUseError} when a port is taken (nothing is left running);
 *   {@link TypeError} for a bad option.
 */
export async function startDemo(options: DemoOptions = {}): Promise<Demo> {
  const env = demoOptionsFromEnv()
  const port = options.port ?? env.port
  const asPort = options.asPort ?? env.asPort
  const apiPort = options.apiPort ?? env.apiPort
  const accessTokenTtl = options.accessTokenTtl ?? env.accessTokenTtl
  const ports: [number, string][] = [
    [asPort, DEMO_ENV.asPort],
    [apiPort, DEMO_ENV.apiPort],
    [port, DEMO_ENV.port],
  ]
  for (const [p, name] of ports) {
    if (ports.filter(([q]) => q === p).length > 1)
      throw new TypeError(`${name}: port ${p} is given to two servers; each needs its own`)
  }
  for (const [p, name] of ports) await probe(p, HOST, name)

  const spaOrigin = `http://${HOST}:${port}`
  const apiOrigin = `http://${HOST}:${apiPort}`
  const redirectUri = `${spaOrigin}/`
  const opened: { close(): Promise<void> }[] = []
  const closeAll = async (): Promise<void> => {
    // Last started, first closed: the SPA stops before the servers it talks to.
    for (const s of opened.splice(0).reverse()) await s.close().catch(() => undefined)
  }
  const start = async <T extends { close(): Promise<void> }>(
    envVar: string,
    p: number,
    run: () => Promise<T>,
  ): Promise<T> => {
    try {
      const s = await run()
      opened.push(s)
      return s
    } catch (error) {
      await closeAll()
      throw isInUse(error) ? new PortInUseError(p, envVar, { cause: error }) : error
    }
  }

  const as: AuthServerHandle = await start(DEMO_ENV.asPort, asPort, () =>
    startAuthServer({
      port: asPort,
      host: HOST,
      redirectUris: [redirectUri],
      postLogoutRedirectUris: [redirectUri],
      corsOrigins: [spaOrigin],
      apiAudience: apiOrigin,
      accessTokenTtl,
      // As docs/servers.md recommends: a DPoP-bound refresh token is not rotated on every use
      // (RFC 9700 §4.14.2), so a refresh answer lost to a reload or a dropped connection costs nothing.
      refreshRotation: 'near-expiry',
      log: options.log,
    }),
  )
  await start<ApiServer>(DEMO_ENV.apiPort, apiPort, () =>
    startApiServer({
      port: apiPort,
      host: '127.0.0.1',
      corsOrigins: [spaOrigin],
      publicOrigin: apiOrigin,
      tokens: { jwt: { issuer: as.issuer, audience: apiOrigin, typ: 'at+jwt' } },
      requireNonce: true,
      // A new API nonce every 30 s, so the log shows use_dpop_nonce challenges now and then, not only on the first call.
      nonceRotateEveryMs: 30_000,
      log: options.log,
    }),
  )
  const config: DemoConfig = {
    issuer: as.issuer,
    clientId: as.clientId,
    apiOrigin,
    redirectUri,
    accessTokenTtl,
  }
  await start<ViteDevServer>(DEMO_ENV.port, port, async () => {
    const server = await createViteServer({
      configFile: false,
      root: here,
      cacheDir: join(
        projectRoot,
        `${process.env.DPOP_TEST_VITE_CACHE ?? 'node_modules/.vite'}-demo`,
      ),
      logLevel: 'warn',
      clearScreen: false,
      appType: 'spa',
      // The SPA imports 'dpop-spa' exactly as an app would; here it resolves to the sources.
      resolve: { alias: { 'dpop-spa': join(projectRoot, 'src/index.ts') } },
      define: { __DPOP_DEMO_CONFIG__: JSON.stringify(config) },
      // Pre-bundled at start-up: a dependency discovered on the first page load makes Vite
      // reload the page, which would throw away a sign-in in progress.
      optimizeDeps: { entries: ['index.html'], include: ['oauth4webapi', 'idb-keyval'] },
      server: {
        host: HOST,
        port,
        strictPort: true,
        fs: { allow: [projectRoot] },
        headers: { 'Content-Security-Policy': contentSecurityPolicy(config, port) },
      },
    })
    try {
      await server.listen()
    } catch (error) {
      await server.close().catch(() => undefined)
      throw error
    }
    return server
  })

  return { url: `${spaOrigin}/`, config, close: closeAll }
}

/**
 * The strict Content-Security-Policy docs/threat-model.md recommends to apps, as the demo sends it:
 * scripts and styles from the page's own origin only (no inline script, no eval), requests
 * only to the page itself, the authorization server and the API, no plugins, no frames, no
 * `<base>` tricks. Vite's dev client needs its own WebSocket (`ws://` on the page's port);
 * a production build drops that source.
 */
export function contentSecurityPolicy(
  config: Pick<DemoConfig, 'issuer' | 'apiOrigin'>,
  port: number,
): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ws://${HOST}:${port} ${new URL(config.issuer).origin} ${config.apiOrigin}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ].join('; ')
}

async function main(): Promise<void> {
  let demo: Demo
  try {
    demo = await startDemo({
      log: process.env.DPOP_DEMO_VERBOSE ? (line) => console.log(line) : undefined,
    })
  } catch (error) {
    console.error(`dpop-spa demo: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  }
  const { config } = demo
  console.log(
    [
      '',
      'dpop-spa demo is running on loopback:',
      `  authorization server  ${config.issuer}   (oidc-provider: DPoP, nonces, PKCE, access tokens ${config.accessTokenTtl} s)`,
      `  API                   ${config.apiOrigin}   (checks every proof with jose)`,
      '',
      `  Open ${demo.url}`,
      '',
      'Sign in with any name (no password). Ctrl-C stops everything.',
      '',
    ].join('\n'),
  )
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    console.log(`\n${signal}: stopping the demo...`)
    demo.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  await main()
