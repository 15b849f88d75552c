/**
 * CORS for the API routes. The SDK reads `DPoP-Nonce`, `WWW-Authenticate` and `Date`
 * from cross-origin responses, and a browser hides every response header that is not
 * CORS-safelisted unless the server lists it in `Access-Control-Expose-Headers`
 * (Fetch standard, "CORS-safelisted response-header name"). `Date` is not safelisted
 * either, and the SDK learns the server clock from it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Response headers the SDK needs to read. */
export const EXPOSED_HEADERS = ['DPoP-Nonce', 'WWW-Authenticate', 'Date'] as const
/** Request headers a signed request carries beyond the safelisted ones (`Last-Event-ID`: an EventSource reconnecting). */
export const ALLOWED_HEADERS = ['Authorization', 'DPoP', 'Content-Type', 'Last-Event-ID'] as const
/** Methods of the API routes. */
export const ALLOWED_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const

/** CORS for one set of allowed page origins. */
export interface Cors {
  /** Adds CORS headers to a response when the request's Origin is allowed. `expose: false` leaves out Expose-Headers on purpose. */
  apply(req: IncomingMessage, res: ServerResponse, options: { expose: boolean }): void
  /** Answers a preflight (OPTIONS with Access-Control-Request-Method). Returns false when `req` is not one. */
  preflight(req: IncomingMessage, res: ServerResponse): boolean
}

/**
 * Creates CORS handling for exact page origins (scheme://host:port, no path).
 * @throws {TypeError} when an origin is not of that form.
 */
export function createCors(allowedOrigins: readonly string[]): Cors {
  const allowed = new Set(
    allowedOrigins.map((o) => {
      const origin = URL.canParse(o) ? new URL(o).origin : 'null'
      if (origin === 'null' || origin !== o.replace(/\/$/, ''))
        throw new TypeError(`CORS origin ${JSON.stringify(o)} must be scheme://host[:port]`)
      return origin
    }),
  )
  const allowOrigin = (req: IncomingMessage, res: ServerResponse): boolean => {
    // Responses differ by Origin: caches must key on it.
    res.setHeader('Vary', 'Origin')
    const origin = req.headers.origin
    if (origin === undefined || !allowed.has(origin)) return false
    res.setHeader('Access-Control-Allow-Origin', origin)
    return true
  }
  return {
    apply(req, res, { expose }) {
      if (allowOrigin(req, res) && expose)
        res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS.join(', '))
    },
    preflight(req, res) {
      if (req.method !== 'OPTIONS' || req.headers['access-control-request-method'] === undefined)
        return false
      if (allowOrigin(req, res)) {
        res.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS.join(', '))
        res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS.join(', '))
        res.setHeader('Access-Control-Max-Age', '600')
      }
      res.statusCode = 204
      res.end()
      return true
    },
  }
}
