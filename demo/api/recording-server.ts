/**
 * The "other origin": a server on a second port that answers every request and records
 * its headers, so a test can assert that it never received `Authorization` or `DPoP`.
 * Its CORS allows any origin and any requested header on purpose: refusing the preflight
 * would stop the browser before the real request and hide a leak instead of catching it.
 */
import { createServer } from 'node:http'
import { closeServer, listen } from './listen.ts'

/** One request the other origin received. */
export interface ReceivedRequest {
  method: string
  url: string
  /** Lower-case names; Authorization's value reduced to its scheme. */
  headers: Record<string, string>
}

/** Options of {@link startRecordingServer}. */
export interface RecordingServerOptions {
  /** @default 0 (any free port) */
  port?: number
  /** @default '127.0.0.1' */
  host?: string
  /** What to call the port in the "in use" message. @default 'the port' */
  portHint?: string
}

/** A running recording server. */
export interface RecordingServer {
  /** `http://<host>:<port>` */
  url: string
  port: number
  /** Requests received since the last reset (control requests excluded). */
  received(): ReceivedRequest[]
  reset(): void
  close(): Promise<void>
}

/**
 * Starts the recording server. Control: GET /__control/requests, POST /__control/reset.
 * @throws {Error} code EADDRINUSE when the port is taken.
 */
export async function startRecordingServer(
  options: RecordingServerOptions = {},
): Promise<RecordingServer> {
  const host = options.host ?? '127.0.0.1'
  let received: ReceivedRequest[] = []
  const server = createServer((req, res) => {
    const url = req.url ?? '/'
    if (url === '/__control/requests') {
      res.setHeader('Content-Type', 'application/json')
      res.end(JSON.stringify(received))
      return
    }
    if (url === '/__control/reset' && req.method === 'POST') {
      received = []
      res.statusCode = 204
      res.end()
      return
    }
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue
      const v = Array.isArray(value) ? value.join(', ') : value
      headers[name] = name === 'authorization' ? (v.split(' ')[0] ?? '') : v
    }
    received.push({ method: req.method ?? '', url, headers })
    res.setHeader('Access-Control-Allow-Origin', req.headers.origin ?? '*')
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, PATCH, DELETE, OPTIONS')
    const requested = req.headers['access-control-request-headers']
    if (requested) res.setHeader('Access-Control-Allow-Headers', requested)
    res.setHeader('Access-Control-Expose-Headers', '*')
    req.resume()
    req.on('end', () => {
      res.statusCode = req.method === 'OPTIONS' ? 204 : 200
      if (res.statusCode === 200) res.setHeader('Content-Type', 'application/json')
      res.end(res.statusCode === 200 ? JSON.stringify({ other: true }) : undefined)
    })
  })
  const port = await listen(server, options.port ?? 0, host, options.portHint ?? 'the port')
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    received: () => structuredClone(received),
    reset() {
      received = []
    },
    close: () => closeServer(server),
  }
}
