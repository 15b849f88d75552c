/**
 * Requests to the authorization server, through oauth4webapi: discovery, signing token
 * requests with a proof from the key, bounds on every request, and what the server's answers
 * teach (clock, nonces); its errors are mapped in ./server-errors.ts. Internal: the login flow
 * and the token manager decide when to call what.
 */
import {
  None,
  allowInsecureRequests,
  clockSkew,
  customFetch,
  discoveryRequest,
  isDPoPNonceError,
  processDiscoveryResponse,
  processRevocationResponse,
  processUserInfoResponse,
  skipSubjectCheck,
  revocationRequest,
  type AuthorizationServer,
  type Client,
  type ClientAuth,
} from 'oauth4webapi'
import { anySignal, timeoutSignal } from '../base/abort.js'
import type { DPoPClock } from '../server-state/clock.js'
import { OAuthError, type DPoPError } from '../base/errors.js'
import type { NonceCache } from '../server-state/nonces.js'
import { createProof } from '../proof/proof.js'
import { toDPoPError } from './server-errors.js'

/**
 * @internal How requests reach the authorization server, and what its answers teach: `send`
 * learns the server's clock from every answer's `Date` (where its CORS exposes it), into the
 * clock shared with the signed fetch; the nonces (`DPoP-Nonce`) are learned by the proof-signed
 * requests below. Both in this module only.
 */
export interface ServerLink {
  /** Sends one request; unwrapped from any installed signed fetch by the caller. */
  readonly send: typeof fetch
  /** Plain http to a loopback issuer (checked by the caller). */
  readonly insecure: boolean
  /** The clock shared with the signed fetch: `iat` of token-request proofs, ID token times. */
  readonly clock: DPoPClock
  /** Nonces shared with the signed fetch. */
  readonly nonces: NonceCache
}

/**
 * @internal The link to the authorization server over `send` (`fetch` read at call time by
 * default). Its answers teach `clock` the server origin's offset, which token-request proofs
 * use, and the default offset, which an API origin's proofs use until that origin answers with
 * a `Date` itself: so the first API request after start-up is already signed on a server's
 * time. A response that a redirect produced says nothing about this server.
 */
export function linkServer(
  send: typeof fetch | undefined,
  insecure: boolean,
  clock: DPoPClock,
  nonces: NonceCache,
): ServerLink {
  const through = send ?? ((input, init) => fetch(input, init))
  return {
    async send(input, init) {
      const startedAt = clock.local()
      const response = await through(input, init)
      if (!response.redirected) {
        const date = response.headers.get('Date')
        const endedAt = clock.local()
        clock.observeDate(
          date,
          startedAt,
          endedAt,
          new URL(input instanceof Request ? input.url : input).origin,
        )
        clock.observeDate(date, startedAt, endedAt)
      }
      return response
    },
    insecure,
    clock,
    nonces,
  }
}

/**
 * @internal Discovers the server's metadata. With `kind` given, that document only; otherwise
 * the one `scope` points to first (OpenID Connect Discovery with `openid`, else RFC 8414's
 * `/.well-known/oauth-authorization-server`), then the other: a plain OAuth server costs no
 * failed request (a 404, and a CORS error in the console) when the scope has no `openid`.
 * @throws {DPoPError} `ERR_NETWORK`, `ERR_TIMEOUT`, `ERR_INVALID_RESPONSE`.
 */
export async function discover(
  issuer: URL,
  link: ServerLink,
  timeoutMs: number,
  scope: string,
  kind?: 'oidc' | 'oauth',
): Promise<AuthorizationServer> {
  const order =
    kind === 'oidc'
      ? (['oidc'] as const)
      : kind === 'oauth'
        ? (['oauth2'] as const)
        : scope.split(' ').includes('openid')
          ? (['oidc', 'oauth2'] as const)
          : (['oauth2', 'oidc'] as const)
  let first: unknown
  for (const algorithm of order) {
    try {
      const response = await discoveryRequest(issuer, {
        algorithm,
        signal: timeoutSignal(timeoutMs),
        // oauth4webapi calls it as fetch(url, init): the same contract, typed differently.
        [customFetch]: link.send as never,
        ...(link.insecure ? { [allowInsecureRequests]: true } : {}),
      })
      return await processDiscoveryResponse(issuer, response)
    } catch (e) {
      first ??= e
    }
  }
  throw toDPoPError(first, 'the discovery of the authorization server')
}

/** @internal The client at the authorization server: who it is and what it asks for. */
export interface ClientIdentity {
  readonly clientId: string
  readonly redirectUri: string
  readonly scope: string
  /** RFC 8707 resource indicators, on the authorization and token requests. */
  readonly resource: readonly string[]
  /** Where the end-session endpoint sends the user back. */
  readonly postLogoutRedirectUri?: string | undefined
}

/** @internal */
export interface AuthorizationServerRequests {
  /** The server's metadata. */
  readonly as: AuthorizationServer
  /** This client at the server. */
  readonly id: ClientIdentity
  readonly client: Client
  readonly clientAuth: ClientAuth
  /** oauth4webapi request options: bounded, signed by `keyPair` when given, `resource` added. */
  options(
    keyPair: CryptoKeyPair | undefined,
    signal?: AbortSignal,
  ): {
    signal: AbortSignal
    additionalParameters?: [string, string][]
  }
  /** One token-endpoint (or PAR) call, retried once on `use_dpop_nonce` (RFC 9449 §8) with a fresh proof. */
  request<T>(
    what: string,
    makeRequest: () => Promise<Response>,
    readResponse: (response: Response) => Promise<T>,
  ): Promise<T>
  /**
   * Revokes a token, best effort, signed by `keyPair` (the key the token is bound to) when
   * given, with one `use_dpop_nonce` retry; both attempts together are bounded by
   * `revocationTimeoutMs`. Resolves to the error to report, or `undefined`. Never rejects.
   */
  revoke(
    token: string,
    hint: 'refresh_token' | 'access_token',
    keyPair: CryptoKeyPair | undefined,
    signal: AbortSignal | undefined,
  ): Promise<DPoPError | undefined>
  /**
   * The UserInfo response (OpenID Connect Core §5.3) for a DPoP-bound access token: a proof
   * with `ath` from `keyPair`, one `use_dpop_nonce` retry, bounded like a token request. The
   * caller compares `sub`.
   * @throws {DPoPError} `ERR_NETWORK`, `ERR_TIMEOUT`, `ERR_INVALID_RESPONSE`; {@link OAuthError} when refused.
   */
  userInfo(
    accessToken: string,
    keyPair: CryptoKeyPair,
  ): Promise<Record<string, unknown> & { sub: string }>
}

/**
 * @internal The requests of client `id` to the server `as` over `link`: each bounded by
 * `requestTimeoutMs` (a revocation by `revocationTimeoutMs`).
 */
export function createAuthorizationServerRequests(
  as: AuthorizationServer,
  id: ClientIdentity,
  link: ServerLink,
  requestTimeoutMs: number,
  revocationTimeoutMs: number,
): AuthorizationServerRequests {
  const { send, insecure, clock, nonces } = link
  const client: Client = { client_id: id.clientId, token_endpoint_auth_method: 'none' }
  // ID tokens come from the token endpoint: its origin's clock is the one to check them with.
  const tokenOrigin = as.token_endpoint ? new URL(as.token_endpoint).origin : undefined

  // Token requests get their proof here, through oauth4webapi's customFetch, rather than
  // from its DPoP handle: that would bundle a second JWS signer (about 1.2 kB gzip) beside
  // createProof, and keep nonces apart from the signed fetch's. RFC 9449 §4.2 claims as
  // always; the nonce (§8) is learned from every answer and the retry is request()'s.
  const withProof =
    (keyPair: CryptoKeyPair, through: typeof fetch = send): typeof fetch =>
    async (url, init) => {
      const { origin } = new URL(url as string)
      // The authorization server's own clock: an API's Date never moves it.
      const proof = await createProof(keyPair, {
        htm: init?.method ?? 'POST',
        htu: url as string,
        nonce: nonces.get(origin),
        now: clock.now(origin),
      })
      // oauth4webapi hands over its headers as a plain object with lower-case names.
      const response = await through(url, {
        ...init,
        headers: { ...(init?.headers as Record<string, string>), dpop: proof },
      })
      // Learned from any answer of that server (2xx included, §8.2), never from a redirect's target.
      const nonce = response.redirected ? null : response.headers.get('DPoP-Nonce')
      if (nonce !== null) nonces.set(origin, nonce)
      return response
    }

  const bounded = (timeoutMs: number, signal: AbortSignal | undefined) => {
    const timeout = timeoutSignal(timeoutMs)
    return signal ? anySignal([signal, timeout]) : timeout
  }
  const common = {
    ...(insecure ? { [allowInsecureRequests]: true } : {}),
    ...(id.resource.length
      ? { additionalParameters: id.resource.map((uri) => ['resource', uri] as [string, string]) }
      : {}),
  }

  const request = async <T>(
    what: string,
    makeRequest: () => Promise<Response>,
    readResponse: (response: Response) => Promise<T>,
  ): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await readResponse(await makeRequest())
      } catch (e) {
        if (attempt === 0 && isDPoPNonceError(e)) continue
        throw toDPoPError(e, what)
      }
    }
  }

  return {
    as,
    id,
    client,
    clientAuth: None(),
    options(keyPair, signal) {
      // oauth4webapi checks ID token times against the client's clock skew (seconds).
      client[clockSkew] = Math.round(clock.offset(tokenOrigin) / 1000)
      return {
        ...common,
        signal: bounded(requestTimeoutMs, signal),
        [customFetch]: keyPair ? withProof(keyPair) : send,
      }
    },
    request,
    userInfo(accessToken, keyPair) {
      const url = as.userinfo_endpoint!
      const { origin } = new URL(url)
      return request(
        'the userinfo request',
        async () => {
          const proof = await createProof(keyPair, {
            htm: 'GET',
            htu: url,
            accessToken,
            nonce: nonces.get(origin),
            now: clock.now(),
          })
          // Never followed: the token and its proof are for this URL only.
          const response = await send(url, {
            headers: {
              authorization: `DPoP ${accessToken}`,
              dpop: proof,
              accept: 'application/json',
            },
            redirect: 'error',
            signal: bounded(requestTimeoutMs, undefined),
          })
          const nonce = response.headers.get('DPoP-Nonce')
          if (nonce !== null) nonces.set(origin, nonce)
          return response
        },
        (response) => processUserInfoResponse(as, client, skipSubjectCheck, response),
      )
    },
    async revoke(token, hint, keyPair, signal) {
      if (!as.revocation_endpoint || signal?.aborted) return undefined
      // One bound for the request and its nonce retry: a logout never waits longer than that.
      const bound = bounded(revocationTimeoutMs, signal)
      // keepalive: an end-session redirect right after must not cancel it.
      const keepalive: typeof fetch = (url, init) => send(url, { ...init, keepalive: true })
      try {
        await request(
          'the token revocation',
          () =>
            revocationRequest(as, client, None(), token, {
              ...(insecure ? { [allowInsecureRequests]: true } : {}),
              signal: bound,
              // Servers that bind a public client's tokens to its key (atproto) revoke only
              // on a proof from that key; without one they answer 200 and revoke nothing.
              [customFetch]: keyPair ? withProof(keyPair, keepalive) : keepalive,
              additionalParameters: { token_type_hint: hint },
            }),
          processRevocationResponse,
        )
        return undefined
      } catch (e) {
        // The caller cut it short: the user is signed out already, the rest is moot.
        if (signal?.aborted) return undefined
        // JWT access tokens often cannot be revoked (unsupported_token_type): expected.
        if (e instanceof OAuthError && e.error === 'unsupported_token_type') return undefined
        return toDPoPError(e, 'the token revocation')
      }
    },
  }
}
