/**
 * A `fetch` for `createDPoPClient({ fetch })` that logs the SDK's traffic with the
 * authorization server: discovery, the code exchange, refreshes, revocation. The signed
 * fetch reports API calls through `debug` events; token endpoint calls go through
 * oauth4webapi and this wrapper is the way to see them (and their `use_dpop_nonce`
 * challenges). It reads only the proof, `grant_type`, the status and the OAuth error:
 * never a request body, a code, a token or a signature.
 */
import type { LogEntry } from './log-view.ts'
import { proofForDisplay } from './redact.ts'

/** Creates the logging fetch for one authorization server origin; other origins pass through unlogged. */
export function createAsLoggingFetch(
  issuerOrigin: string,
  log: (entry: LogEntry) => void,
): typeof fetch {
  return async (input, init) => {
    // No `new Request(input, init)`: it would consume the body of a Request passed through.
    const url = new URL(input instanceof Request ? input.url : input, location.href)
    if (url.origin !== issuerOrigin) return fetch(input, init)
    const method = init?.method ?? (input instanceof Request ? input.method : 'GET')
    const headers = new Headers(
      init?.headers ?? (input instanceof Request ? input.headers : undefined),
    )
    // oauth4webapi sends a URLSearchParams body; only its grant_type is read.
    const grantType = init?.body instanceof URLSearchParams ? init.body.get('grant_type') : null
    const proof = headers.get('DPoP')
    const what = `${method.toUpperCase()} ${url.origin}${url.pathname}${grantType ? ` (grant_type=${grantType})` : ''}`
    const response = await fetch(input, init)
    const details: Record<string, unknown> = {}
    if (proof) {
      const shown = proofForDisplay(proof)
      if (shown)
        Object.assign(details, { 'proof header': shown.header, 'proof claims': shown.claims })
    }
    const nonce = response.headers.get('DPoP-Nonce')
    if (!response.ok) {
      const error = await response
        .clone()
        .json()
        .then((b: unknown) => b as { error?: unknown; error_description?: unknown })
        .catch(() => undefined)
      if (error)
        details.response = { error: error.error, error_description: error.error_description }
    } else if (url.pathname.endsWith('/token') || grantType) {
      const ok = await response
        .clone()
        .json()
        .then((b: unknown) => b as { token_type?: unknown; expires_in?: unknown; scope?: unknown })
        .catch(() => undefined)
      // token_type is what proves the server bound the token (RFC 9449 §5); the tokens themselves stay out.
      if (ok)
        details.response = { token_type: ok.token_type, expires_in: ok.expires_in, scope: ok.scope }
    }
    const error = (details.response as { error?: unknown } | undefined)?.error
    const challenge = error === 'use_dpop_nonce'
    const note = challenge
      ? ' use_dpop_nonce: the server wants its nonce in the proof; the SDK retries once'
      : error === 'unsupported_token_type'
        ? ' unsupported_token_type: a JWT access token cannot be revoked (expected; it expires soon)'
        : typeof error === 'string'
          ? ` ${error}`
          : ''
    log({
      kind: 'as',
      text: `${what} → ${response.status}${note}`,
      status: response.status,
      details,
    })
    if (nonce && challenge)
      log({ kind: 'nonce', text: `DPoP-Nonce from ${url.origin} learned (${nonce.slice(0, 10)}…)` })
    return response
  }
}
