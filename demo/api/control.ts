/**
 * The demo API's test-only routes, kept out of server.ts and wired only in test mode (the
 * default with test tokens, or `control: true`); the browser tests of the signed fetch and the
 * token suite drive the API through them:
 * `GET /__control/health`, `GET /__control/stats`, `POST /__control/reset`,
 * `POST /__control/rotate-nonce {after?}`, `POST /__control/clock {offsetMs}`,
 * `POST /__control/token {jkt, expiresIn?, sub?}`, `POST /__control/revoke {access_token?}`,
 * `POST /__control/sse-close`; and `* /api/redirect?to=URL&status=302`, a redirect that
 * checks nothing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { readJson, sendJson } from './body.ts'
import type { ApiServer } from './server.ts'

/** What the control routes act on. */
export interface ControlTarget {
  /** The running server (read per request: it exists only once the server listens). */
  api(): ApiServer
  /** Whether tokens are minted here (`POST /__control/token`), i.e. test token mode. */
  testTokens: boolean
  /** Rotates the nonce once `after` more API requests have arrived; returns that request count. */
  scheduleRotation(after: number): number
  /** The server's clock, ms. */
  now(): number
}

/**
 * The `/__control/*` handler.
 * @throws {SyntaxError} or {@link TypeError} (rejects) for a malformed JSON body; the server answers 400.
 */
export function createControlRoutes(
  target: ControlTarget,
): (req: IncomingMessage, res: ServerResponse, route: string) => Promise<void> {
  return async (req: IncomingMessage, res: ServerResponse, route: string): Promise<void> => {
    const api = target.api()
    const post = req.method === 'POST'
    if (route === '/__control/health') return sendJson(res, 200, { ok: true })
    if (route === '/__control/stats') return sendJson(res, 200, api.stats())
    if (!post) return sendJson(res, 405, { error: 'method_not_allowed' })
    const input = await readJson(req)
    switch (route) {
      case '/__control/reset':
        api.reset()
        return sendJson(res, 200, { ok: true })
      case '/__control/rotate-nonce': {
        const after = input.after
        if (after === undefined) return sendJson(res, 200, { nonce: api.rotateNonce() })
        if (typeof after !== 'number' || !Number.isInteger(after) || after < 1)
          return sendJson(res, 400, { error: '"after" must be a positive integer' })
        return sendJson(res, 200, { scheduledAt: target.scheduleRotation(after) })
      }
      case '/__control/clock': {
        const offsetMs = input.offsetMs
        if (typeof offsetMs !== 'number' || !Number.isFinite(offsetMs))
          return sendJson(res, 400, { error: '"offsetMs" must be a number' })
        api.setClockOffset(offsetMs)
        return sendJson(res, 200, { offsetMs, now: target.now() })
      }
      case '/__control/token':
        if (!target.testTokens) return sendJson(res, 404, { error: 'not_in_test_mode' })
        try {
          return sendJson(
            res,
            200,
            api.mintToken({
              jkt: input.jkt as string,
              expiresIn: input.expiresIn as number | undefined,
              sub: input.sub as string | undefined,
            }),
          )
        } catch (error) {
          return sendJson(res, 400, { error: (error as Error).message })
        }
      case '/__control/sse-close':
        return sendJson(res, 200, { closed: api.closeStreams() })
      case '/__control/revoke':
        return sendJson(res, 200, {
          revoked: api.revokeTokens(
            typeof input.access_token === 'string' ? input.access_token : undefined,
          ),
        })
      default:
        return sendJson(res, 404, { error: 'not_found' })
    }
  }
}

/**
 * `/api/redirect`: a redirect as a hostile or misconfigured API would send it, with a nonce
 * and a Date decades off that a client must not credit to anyone.
 */
export function answerRedirect(res: ServerResponse, url: URL): void {
  const status = Number(url.searchParams.get('status') ?? 302)
  res.statusCode = [301, 302, 303, 307, 308].includes(status) ? status : 302
  res.setHeader('Location', url.searchParams.get('to') ?? '/')
  res.setHeader('DPoP-Nonce', 'nonce-from-a-redirect')
  res.end()
}
