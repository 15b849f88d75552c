/**
 * What the test server saw: counts per route and outcome, and the most recent requests
 * with their headers, so browser tests can count retries and check what was sent.
 * Access tokens are never kept: Authorization keeps its scheme, plus the token's `ath`.
 */
import type { IncomingMessage } from 'node:http'
import { athOf } from './verify-proof.ts'

/** How a request ended. */
export type Outcome =
  | 'ok'
  | 'preflight'
  | 'unauthenticated'
  | 'invalid_request'
  | 'invalid_token'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'not_found'
  | 'payload_too_large'
  | 'redirect'

/** One request as recorded. */
export interface RequestRecord {
  /** 1-based order of arrival since the last reset. */
  seq: number
  method: string
  path: string
  /** The query string without `?`, '' when none. */
  query: string
  outcome: Outcome
  /** The failed check, for 401s. */
  check?: string | undefined
  status: number
  /** Received headers, lower-case names; Authorization reduced to its scheme. */
  headers: Record<string, string | string[]>
  /** `ath` of the received access token, to tell tokens apart without keeping them. */
  tokenAth?: string | undefined
  /** Claims of the proof, when one could be decoded (even a rejected one). */
  proof?:
    | { jti?: unknown; htm?: unknown; htu?: unknown; iat?: unknown; nonce?: unknown; ath?: unknown }
    | undefined
  /** Number of body bytes received. */
  bodyLength: number
  /** base64url SHA-256 of the body received, to compare the bytes of a first attempt and its retry. */
  bodySha256?: string | undefined
}

/** The stats document of `/__control/stats`. */
export interface Stats {
  total: number
  /** route path → outcome → count. */
  routes: Record<string, Partial<Record<Outcome, number>>>
  recent: RequestRecord[]
}

/** Request log with a bounded history. */
export interface RequestLog {
  /** Records a finished request. */
  record(
    entry: Omit<RequestRecord, 'seq' | 'headers' | 'tokenAth'> & { req: IncomingMessage },
  ): void
  /** A snapshot. */
  stats(): Stats
  /** Forgets everything. */
  clear(): void
}

/** Creates a request log keeping at most `limit` recent requests. Never throws. */
export function createRequestLog(limit = 5000): RequestLog {
  let seq = 0
  let recent: RequestRecord[] = []
  let routes: Stats['routes'] = {}

  return {
    record({ req, ...entry }) {
      const headers: Record<string, string | string[]> = {}
      let tokenAth: string | undefined
      for (const [name, value] of Object.entries(req.headersDistinct)) {
        if (value === undefined) continue
        if (name === 'authorization') {
          headers[name] = value.map((v) => v.split(' ')[0] ?? '')
          const token =
            /^DPoP\s+(\S+)$/i.exec(value[0] ?? '')?.[1] ??
            /^Bearer\s+(\S+)$/i.exec(value[0] ?? '')?.[1]
          if (token) tokenAth = athOf(token)
        } else {
          headers[name] = value.length === 1 ? (value[0] ?? '') : value
        }
      }
      const route = (routes[entry.path] ??= {})
      route[entry.outcome] = (route[entry.outcome] ?? 0) + 1
      recent.push({ seq: ++seq, ...entry, headers, tokenAth })
      if (recent.length > limit) recent = recent.slice(-limit)
    },
    stats() {
      return { total: seq, routes: structuredClone(routes), recent: structuredClone(recent) }
    },
    clear() {
      seq = 0
      recent = []
      routes = {}
    },
  }
}
