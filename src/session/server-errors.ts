/**
 * What the authorization server's answers turn into when they fail: oauth4webapi's errors
 * mapped to ours without any token in them, and the checks every token response of a
 * proof-signed request must pass (`token_type`, `cnf.jkt`).
 */
import {
  AuthorizationResponseError,
  OperationProcessingError,
  ResponseBodyError,
  UnsupportedOperationError,
  WWWAuthenticateChallengeError,
  type TokenEndpointResponse,
} from 'oauth4webapi'
import { decodeJwtPart } from '../base/base64url.js'
import {
  DPoPError,
  OAuthError,
  ServerResponseError,
  isDPoPError,
  serverText,
} from '../base/errors.js'

/**
 * @internal What may be kept of an underlying error as a `cause`: its name, message and
 * code, nothing deeper. oauth4webapi's errors carry the whole response body (access,
 * refresh and ID tokens included) as their own `cause`, and the Response itself; those
 * must never reach `console.error`, an error tracker or `util.inspect`.
 */
export function redactedCause(e: unknown): Error | undefined {
  if (!(e instanceof Error)) return undefined
  // JSON.parse's messages quote the input, which may be the token response itself.
  const copy = new Error(
    e instanceof SyntaxError ? 'the response body could not be parsed' : e.message,
  )
  copy.name = e.name
  const code = (e as { code?: unknown }).code
  if (typeof code === 'string')
    Object.defineProperty(copy, 'code', { value: code, enumerable: true })
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
    return new OAuthError(
      error,
      description,
      `The authorization server refused ${doing}: ${error}${brief ? ` (${brief})` : ''}.`,
      { cause },
    )
  }
  if (e instanceof ResponseBodyError || e instanceof AuthorizationResponseError)
    return refused(e.error, e.error_description)
  if (e instanceof WWWAuthenticateChallengeError) {
    const c = e.cause[0]
    return refused(c?.parameters.error ?? 'invalid_request', c?.parameters.error_description)
  }
  if (e instanceof OperationProcessingError || e instanceof UnsupportedOperationError) {
    return new ServerResponseError(
      'ERR_INVALID_RESPONSE',
      `Invalid answer to ${doing} (${e.message}): check the server's settings for this client.`,
      { cause },
    )
  }
  if (e instanceof TypeError) {
    return new DPoPError(
      'ERR_NETWORK',
      `No answer to ${doing}: check the network, the issuer URL and the server's CORS settings.`,
      { cause },
    )
  }
  if (e instanceof DOMException && e.name === 'TimeoutError') {
    return new DPoPError(
      'ERR_TIMEOUT',
      `No answer in time to ${doing}: check that the authorization server is up, then try again.`,
      { cause },
    )
  }
  // The caller's own abort goes back as it came, like fetch does.
  if (e instanceof DOMException && e.name === 'AbortError') throw e
  return new ServerResponseError('ERR_INVALID_RESPONSE', `Unexpected failure during ${doing}.`, {
    cause,
  })
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
    throw new ServerResponseError(
      'ERR_INVALID_RESPONSE',
      "The access token is bound (cnf.jkt) to another key than the proof's: check the server's DPoP settings.",
    )
  }
}
