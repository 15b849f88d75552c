/**
 * Requests to the authorization server, through oauth4webapi: discovery, signing token
 * requests with a proof from the key, bounds on every request, the checks every token
 * response must pass (`token_type`, `cnf.jkt`), and oauth4webapi's errors mapped to ours
 * without any token in them. Internal: the token manager decides when to call what.
 */
import {
  AuthorizationResponseError,
  None,
  OperationProcessingError,
  ResponseBodyError,
  UnsupportedOperationError,
  WWWAuthenticateChallengeError,
  allowInsecureRequests,
  clockSkew,
  customFetch,
  discoveryRequest,
  isDPoPNonceError,
  processDiscoveryResponse,
  processRevocationResponse,
  revocationRequest,
  type AuthorizationServer,
  type Client,
  type ClientAuth,
  type TokenEndpointResponse,
} from 'oauth4webapi'
import { anySignal, timeoutSignal } from '../base/abort.js'
import { decodeJwtPart } from '../base/base64url.js'
import type { DPoPClock } from '../server-state/clock.js'
import { DPoPError, OAuthError, ServerResponseError, isDPoPError, serverText } from '../base/errors.js'
import type { NonceCache } from '../server-state/nonces.js'
import { createProof } from '../proof/proof.js'

/**
 * @internal What may be kept of an underlying error as a `cause`: its name, message and
 * code, nothing deeper. oauth4webapi's errors carry the whole response body (access,
 * refresh and ID tokens included) as their own `cause`, and the Response itself; those
 * must never reach `console.error`, an error tracker or `util.inspect`.
 */
export function redactedCause(e: unknown): Error | undefined {
  if (!(e instanceof Error)) return undefined
  // JSON.parse's messages quote the input, which may be the token response itself.
  const copy = new Error(e instanceof SyntaxError ? 'the response body could not be parsed' : e.message)
  copy.name = e.name
  const code = (e as { code?: unknown }).code
  if (typeof code === 'string') Object.defineProperty(copy, 'code', { value: code, enumerable: true })
  copy.stack = `${e.name}: ${copy.message}`
  return copy
}

/** @internal Turns what oauth4webapi or fetch threw into a typed error (never with tokens in it, at any depth). */
export function toDPoPError(e: unknown, doing: string): DPoPError {
  if (isDPoPError(e)) return e
  const cause = redactedCause(e)
  // Server text is capped and filtered (serverText): the field keeps more than the message.
  const refused = (code: string, text: string | undefined) => {
    const error = serverText(code, 64)
    const description = text === undefined ? undefined : serverText(text, 1000)
    const brief = description === undefined ? '' : serverText(description, 200)
    return new OAuthError(error, description, `The authorization server refused ${doing}: ${error}${brief ? ` (${brief})` : ''}.`, { cause })
  }
  if (e instanceof ResponseBodyError || e instanceof AuthorizationResponseError) return refused(e.error, e.error_description)
  if (e instanceof WWWAuthenticateChallengeError) {
    const c = e.cause[0]
    return refused(c?.parameters.error ?? 'invalid_request', c?.parameters.error_description)
  }
  if (e instanceof OperationProcessingError || e instanceof UnsupportedOperationError) {
    return new ServerResponseError('ERR_INVALID_RESPONSE', `Invalid answer to ${doing} (${e.message}): check the authorization server's settings for this client.`, { cause })
  }
  if (e instanceof TypeError) {
    return new DPoPError('ERR_NETWORK', `No answer to ${doing}: check the network, the issuer URL and the server's CORS settings.`, { cause })
  }
  if (e instanceof DOMException && e.name === 'TimeoutError') {
    return new DPoPError('ERR_TIMEOUT', `The authorization server did not answer ${doing} in time: check that it is up and reachable, then try again.`, { cause })
  }
  // The caller's own abort goes back as it came, like fetch does.
  if (e instanceof DOMException && e.name === 'AbortError') throw e
  return new ServerResponseError('ERR_INVALID_RESPONSE', `Unexpected failure during ${doing}.`, { cause })
}

/**
 * @internal The checks every token response of a proof-signed request must pass:
 * `token_type: DPoP` (RFC 9449 §5: never a silent bearer fallback) and, for a JWT access
 * token, `cnf.jkt` equal to the key's thumbprint (§6.1).
 * @throws {ServerResponseError} `ERR_TOKEN_TYPE_MISMATCH`, `ERR_INVALID_RESPONSE`.
 */
export function checkBoundTokens(result: TokenEndpointResponse, jkt: string): void {
  if (result.token_type !== 'dpop') {
    throw new ServerResponseError(
      'ERR_TOKEN_TYPE_MISMATCH',
      `Got a "${result.token_type}" token for a DPoP proof; dpop-spa never uses bearer tokens. ` +
        'Turn on DPoP-bound tokens for this client at the authorization server (e.g. dpop_bound_access_tokens).',
    )
  }
  const payload = decodeJwtPart(result.access_token, 1) as { cnf?: { jkt?: unknown } } | undefined
  const bound = payload?.cnf?.jkt
  if (typeof bound === 'string' && bound !== jkt) {
    throw new ServerResponseError('ERR_INVALID_RESPONSE', 'The access token is bound (cnf.jkt) to another key than the proof\'s: check the server\'s DPoP settings.')
  }
}

/**
 * @internal Discovers the server's metadata: OpenID Connect Discovery first, then RFC 8414
 * (a plain OAuth server publishes only `/.well-known/oauth-authorization-server`).
 * @throws {DPoPError} `ERR_NETWORK`, `ERR_TIMEOUT`, `ERR_INVALID_RESPONSE`.
 */
export async function discover(issuer: URL, send: typeof fetch, insecure: boolean, timeoutMs: number): Promise<AuthorizationServer> {
  let first: unknown
  for (const algorithm of ['oidc', 'oauth2'] as const) {
    try {
      const response = await discoveryRequest(issuer, {
        algorithm,
        signal: timeoutSignal(timeoutMs),
        // oauth4webapi calls it as fetch(url, init): the same contract, typed differently.
        [customFetch]: send as never,
        ...(insecure ? { [allowInsecureRequests]: true } : {}),
      })
      return await processDiscoveryResponse(issuer, response)
    } catch (e) {
      first ??= e
    }
  }
  throw toDPoPError(first, 'the discovery of the authorization server')
}

/** @internal What the token manager needs to talk to one authorization server. */
export interface AuthorizationServerOptions {
  readonly as: AuthorizationServer
  readonly clientId: string
  readonly resource: readonly string[]
  /** Sends every request; unwrapped from any installed signed fetch by the caller. */
  readonly fetch: typeof fetch | undefined
  readonly insecure: boolean
  /** The clock shared with the signed fetch: `iat` of token-request proofs, ID token times. */
  readonly clock: DPoPClock
  /** Nonces shared with the signed fetch. */
  readonly nonces: NonceCache
  /** The bound on each discovery, token and PAR request (`CLIENT_DEFAULTS.requestTimeoutMs`). */
  readonly requestTimeoutMs: number
  /** The bound on each revocation (`CLIENT_DEFAULTS.revocationTimeoutMs`). */
  readonly revocationTimeoutMs: number
}

/** @internal */
export interface AuthorizationServerRequests {
  readonly client: Client
  readonly clientAuth: ClientAuth
  /** oauth4webapi request options: bounded, signed by `keyPair` when given, `resource` added. */
  options(keyPair: CryptoKeyPair | undefined, signal?: AbortSignal): {
    signal: AbortSignal
    additionalParameters?: [string, string][]
  }
  /** One token-endpoint (or PAR) call, retried once on `use_dpop_nonce` (RFC 9449 §8) with a fresh proof. */
  call<T>(doing: string, make: () => Promise<Response>, process: (r: Response) => Promise<T>): Promise<T>
  /** Revokes a token, best effort; resolves to the error to report, or `undefined`. Never rejects. */
  revoke(token: string, hint: 'refresh_token' | 'access_token', signal: AbortSignal | undefined): Promise<DPoPError | undefined>
}

/** @internal */
export function createAuthorizationServerRequests(o: AuthorizationServerOptions): AuthorizationServerRequests {
  const client: Client = { client_id: o.clientId, token_endpoint_auth_method: 'none' }
  const send = o.fetch ?? ((input, init) => fetch(input, init))
  // ID tokens come from the token endpoint: its origin's clock is the one to check them with.
  const tokenOrigin = o.as.token_endpoint ? new URL(o.as.token_endpoint).origin : undefined

  // Token requests get their proof here, through oauth4webapi's customFetch, rather than
  // from its DPoP handle: that would bundle a second JWS signer (about 1.2 kB gzip) beside
  // createProof, and keep nonces apart from the signed fetch's. RFC 9449 §4.2 claims as
  // always; the nonce (§8) is learned from every answer and the retry is call()'s.
  const withProof = (keyPair: CryptoKeyPair): typeof fetch => async (url, init) => {
    const { origin } = new URL(url as string)
    // The authorization server's own clock: an API's Date never moves it.
    const proof = await createProof(keyPair, { htm: init?.method ?? 'POST', htu: url as string, nonce: o.nonces.get(origin), now: o.clock.now(origin) })
    // oauth4webapi hands over its headers as a plain object with lower-case names.
    const response = await send(url, { ...init, headers: { ...(init?.headers as Record<string, string>), dpop: proof } })
    // Learned from any answer of that server (2xx included, §8.2), never from a redirect's target.
    const nonce = response.redirected ? null : response.headers.get('DPoP-Nonce')
    if (nonce !== null) o.nonces.set(origin, nonce)
    return response
  }

  const bounded = (timeoutMs: number, signal: AbortSignal | undefined) => {
    const timeout = timeoutSignal(timeoutMs)
    return signal ? anySignal([signal, timeout]) : timeout
  }
  const common = {
    ...(o.insecure ? { [allowInsecureRequests]: true } : {}),
    ...(o.resource.length ? { additionalParameters: o.resource.map((r) => ['resource', r] as [string, string]) } : {}),
  }

  return {
    client,
    clientAuth: None(),
    options(keyPair, signal) {
      // oauth4webapi checks ID token times against the client's clock skew (seconds).
      client[clockSkew] = Math.round(o.clock.offset(tokenOrigin) / 1000)
      return {
        ...common,
        signal: bounded(o.requestTimeoutMs, signal),
        [customFetch]: keyPair ? withProof(keyPair) : send,
      }
    },
    async call(doing, make, process) {
      for (let attempt = 0; ; attempt++) {
        try {
          return await process(await make())
        } catch (e) {
          if (attempt === 0 && isDPoPNonceError(e)) continue
          throw toDPoPError(e, doing)
        }
      }
    },
    async revoke(token, hint, signal) {
      if (!o.as.revocation_endpoint || signal?.aborted) return undefined
      try {
        const r = await revocationRequest(o.as, client, None(), token, {
          ...(o.insecure ? { [allowInsecureRequests]: true } : {}),
          signal: bounded(o.revocationTimeoutMs, signal),
          // keepalive: an end-session redirect right after must not cancel it.
          [customFetch]: (url: string, init: RequestInit) => send(url, { ...init, keepalive: true }),
          additionalParameters: { token_type_hint: hint },
        })
        await processRevocationResponse(r)
        return undefined
      } catch (e) {
        // The caller cut it short: the user is signed out already, the rest is moot.
        if (signal?.aborted) return undefined
        // JWT access tokens often cannot be revoked (unsupported_token_type): expected.
        if (e instanceof ResponseBodyError && e.error === 'unsupported_token_type') return undefined
        return toDPoPError(e, 'the token revocation')
      }
    },
  }
}
