/**
 * The benchmark's tiny loopback server: serves the bench pages (bundled in memory by
 * run.ts) and the API the network cases call. It does the same cheap work for a signed
 * and a bearer request, so any difference the page measures is the client's; it only
 * counts requests and keeps the last proof, which run.ts verifies with jose afterwards.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One file the server serves at a fixed path. */
export interface BenchFile {
  readonly type: string
  readonly body: string | Uint8Array
}

/** What the API saw; run.ts checks it so a bench that silently stopped signing fails. */
export interface BenchServerStats {
  /** Requests with `Authorization: DPoP …` and a `DPoP` header (including /api/raw). */
  signed: number
  /** Requests with `Authorization: Bearer …` and no `DPoP` header. */
  bearer: number
  /** Anything else that reached /api/ (should stay 0). */
  other: number
  /** The last `DPoP` header and its request outside /api/raw, for verification with jose. */
  last?: { proof: string; authorization: string; method: string; url: string }
}

/** A running bench server. */
export interface BenchServer {
  /** `http://localhost:<port>`: a secure context for WebCrypto. */
  readonly origin: string
  readonly stats: BenchServerStats
  close(): Promise<void>
}

/** Options of {@link startBenchServer}. */
export interface BenchServerOptions {
  /** Static files by absolute path (`/bench.html`). */
  files: ReadonlyMap<string, BenchFile>
  /** The `DPoP-Nonce` every API response carries (RFC 9449 §9), so proofs include a nonce. */
  nonce: string
}

/**
 * Starts the server on 127.0.0.1 (an ephemeral port).
 * @throws when the port cannot be bound.
 */
export async function startBenchServer(options: BenchServerOptions): Promise<BenchServer> {
  const stats: BenchServerStats = { signed: 0, bearer: 0, other: 0 }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    // Cross-origin isolation lifts Chromium's 100 µs clamp of performance.now() to 5 µs,
    // which the one-proof idle-gap samples need. Every resource is same-origin, so COEP costs nothing.
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin')
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp')
    res.setHeader('Cache-Control', 'no-store')
    if (url.pathname.startsWith('/api/')) {
      const authorization = req.headers.authorization ?? ''
      const proof = req.headers.dpop
      if (authorization.startsWith('DPoP ') && typeof proof === 'string') {
        stats.signed++
        // /api/raw gets a replayed proof from the no-library baseline: not one to verify.
        if (url.pathname !== '/api/raw')
          stats.last = { proof, authorization, method: req.method ?? '', url: url.pathname }
      } else if (authorization.startsWith('Bearer ') && proof === undefined) {
        stats.bearer++
      } else {
        stats.other++
      }
      // Same response for both kinds of request.
      res.writeHead(200, { 'Content-Type': 'application/json', 'DPoP-Nonce': options.nonce })
      res.end('{"ok":true}')
      return
    }
    const file = options.files.get(url.pathname)
    if (!file) {
      res.writeHead(404, { 'Content-Type': 'text/plain' })
      res.end('not found')
      return
    }
    res.writeHead(200, { 'Content-Type': file.type })
    res.end(file.body)
  }

  const server = createServer(handle)
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://localhost:${port}`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
