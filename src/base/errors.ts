/**
 * The error family of dpop-spa. Every failure an app can act on is a {@link DPoPError}
 * with a stable {@link DPoPErrorCode}; callers `switch` on `code`, not on messages.
 * Messages never contain access tokens, refresh tokens or proof signatures.
 */

/**
 * Stable machine-readable error codes. They are part of the public API: a code is
 * never renamed, only added.
 */
export type DPoPErrorCode =
  /** An argument or option has the wrong shape; the message names it. */
  | 'ERR_INVALID_ARGUMENT'
  /** The requested signing algorithm is not supported by dpop-spa or this browser. */
  | 'ERR_UNSUPPORTED_ALGORITHM'
  /** WebCrypto (`crypto.subtle`) is missing: the page is not a secure context. */
  | 'ERR_CRYPTO_UNAVAILABLE'
  /** IndexedDB is missing, blocked or refused to open. */
  | 'ERR_KEY_STORE_UNAVAILABLE'
  /** IndexedDB cannot hold a CryptoKey (DataCloneError: private modes, iOS Lockdown Mode). */
  | 'ERR_KEY_STORE_UNSUPPORTED'
  /** IndexedDB ran out of quota. */
  | 'ERR_KEY_STORE_QUOTA'
  /** Any other IndexedDB failure while reading or writing the key pair. */
  | 'ERR_KEY_STORE_FAILED'
  /** Signing a DPoP proof failed. */
  | 'ERR_PROOF_FAILED'
  /** A request body was consumed and cannot be sent again for a required retry. */
  | 'ERR_BODY_NOT_REPLAYABLE'
  /** A cross-origin response hid a header DPoP needs (CORS `Access-Control-Expose-Headers`). */
  | 'ERR_CORS_HEADER_HIDDEN'
  /** A server could not be reached (network failure, CORS refusal, DNS). */
  | 'ERR_NETWORK'
  /** The server answered in a way the protocol does not allow (broken JSON, missing fields). */
  | 'ERR_INVALID_RESPONSE'
  /** The authorization server issued a non-DPoP (e.g. Bearer) token although a proof was sent. */
  | 'ERR_TOKEN_TYPE_MISMATCH'
  /** The authorization server returned an OAuth error (`error`, `error_description`). */
  | 'ERR_OAUTH'
  /** The redirect back from the authorization server does not match a login started here. */
  | 'ERR_STATE_MISMATCH'
  /**
   * The login cannot complete and must start again: thrown by `handleRedirect()` when the
   * key changed between `login()` and the redirect back (another tab logged out meanwhile).
   */
  | 'ERR_LOGIN_REQUIRED'
  /** Waiting for another tab (the refresh lock) or for the authorization server took longer than allowed. */
  | 'ERR_TIMEOUT'
  /** An API answered a signed request with a redirect, which dpop-spa does not follow. */
  | 'ERR_REDIRECT'
  /** An `XMLHttpRequest` to an API origin was refused by `guardXMLHttpRequest`: it would have gone out without DPoP. */
  | 'ERR_XHR_NOT_SIGNED'
  /** The app's `verifyUser` refused the signed-in user: the login ended and nothing was stored. */
  | 'ERR_USER_REFUSED'

/** The codes a {@link KeyStoreError} carries, and no other class. */
export type KeyStoreErrorCode =
  | 'ERR_KEY_STORE_UNAVAILABLE'
  | 'ERR_KEY_STORE_UNSUPPORTED'
  | 'ERR_KEY_STORE_QUOTA'
  | 'ERR_KEY_STORE_FAILED'

/** The codes a {@link ServerResponseError} carries, and no other class. */
export type ServerResponseErrorCode =
  'ERR_CORS_HEADER_HIDDEN' | 'ERR_INVALID_RESPONSE' | 'ERR_TOKEN_TYPE_MISMATCH' | 'ERR_REDIRECT'

/** The codes a plain {@link DPoPError} (no subclass) carries. */
export type PlainDPoPErrorCode = Exclude<
  DPoPErrorCode,
  KeyStoreErrorCode | ServerResponseErrorCode | 'ERR_OAUTH'
>

/**
 * The error class that carries `code`: each code is thrown by one class only, so
 * `isDPoPError(e, 'ERR_REDIRECT')` gives a {@link ServerResponseError} with its `status`, and
 * a `switch (e.code)` on the result of `isDPoPError(e)` narrows to the class.
 */
export type DPoPErrorFor<C extends DPoPErrorCode> = C extends KeyStoreErrorCode
  ? KeyStoreError & CodeOf<C>
  : C extends ServerResponseErrorCode
    ? ServerResponseError & CodeOf<C>
    : C extends 'ERR_OAUTH'
      ? OAuthError
      : DPoPError & CodeOf<C>

/** An error whose `code` is `C`. */
export interface CodeOf<C extends DPoPErrorCode> {
  /** The code. */
  readonly code: C
}

/** Options accepted by {@link DPoPError} and its subclasses. */
export interface DPoPErrorOptions {
  /** The underlying error, kept for debugging. */
  cause?: unknown
}

/**
 * Base class of every error dpop-spa throws on purpose.
 *
 * @example
 * ```ts
 * try { await keys.load() } catch (e) {
 *   if (isDPoPError(e, 'ERR_KEY_STORE_UNSUPPORTED')) showPrivateModeHint()
 * }
 * ```
 */
export class DPoPError extends Error {
  /** Stable code to switch on. */
  readonly code: DPoPErrorCode

  /**
   * Creates an error with a code and a message that says what to do. Never throws.
   * @param code - the stable code callers switch on.
   * @param message - what happened and what to do; never a token or signature.
   * @param options - `cause`: the underlying error.
   */
  constructor(code: DPoPErrorCode, message: string, options?: DPoPErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
  }
}

/**
 * IndexedDB-backed key storage failed; `code` says how.
 *
 * @example
 * ```ts
 * keys.load().catch((e) => { if (e instanceof KeyStoreError) showStorageHint(e.code) })
 * ```
 */
export class KeyStoreError extends DPoPError {
  /** One of the key-store codes. */
  declare readonly code: KeyStoreErrorCode

  /**
   * Creates the error. Never throws.
   * @param code - one of the key-store codes.
   * @param message - what happened and what to do.
   * @param options - `cause`: the underlying IndexedDB error.
   */
  constructor(code: KeyStoreErrorCode, message: string, options?: DPoPErrorOptions) {
    super(code, message, options)
  }
}

/**
 * A server answered in a way dpop-spa cannot use, or the browser hid what it needs.
 * `status` is the HTTP status when there was a response.
 *
 * @example
 * ```ts
 * try { await api('https://api.example.com/me') } catch (e) {
 *   if (isDPoPError(e, 'ERR_CORS_HEADER_HIDDEN')) console.error(e.message) // names the header to expose
 * }
 * ```
 */
export class ServerResponseError extends DPoPError {
  /** One of the server-response codes. */
  declare readonly code: ServerResponseErrorCode
  /** HTTP status of the response, when there was one. */
  readonly status: number | undefined

  /**
   * Creates the error. Never throws.
   * @param code - the stable code callers switch on.
   * @param message - what happened and what to do.
   * @param options - `cause`, and `status`: the HTTP status when there was a response.
   */
  constructor(
    code: ServerResponseErrorCode,
    message: string,
    options?: DPoPErrorOptions & { status?: number },
  ) {
    super(code, message, options)
    this.status = options?.status
  }
}

/**
 * The authorization server returned an OAuth 2.0 error response (RFC 6749 §5.2).
 *
 * @example
 * ```ts
 * try { await auth.handleRedirect() } catch (e) {
 *   if (e instanceof OAuthError && e.error === 'access_denied') showSignInCancelled()
 * }
 * ```
 */
export class OAuthError extends DPoPError {
  /** Always `ERR_OAUTH`. */
  declare readonly code: 'ERR_OAUTH'
  /** The `error` value from the server, e.g. `invalid_grant`. */
  readonly error: string
  /** The `error_description`, when the server sent one. */
  readonly errorDescription: string | undefined

  /**
   * Creates the error from the server's `error` and `error_description`. Never throws.
   * @param error - the `error` value, e.g. `invalid_grant`.
   * @param errorDescription - the `error_description`, when sent.
   * @param message - what happened and what to do.
   * @param options - `cause`: the underlying error.
   */
  constructor(
    error: string,
    errorDescription: string | undefined,
    message: string,
    options?: DPoPErrorOptions,
  ) {
    super('ERR_OAUTH', message, options)
    this.error = error
    this.errorDescription = errorDescription
  }
}

/**
 * Type guard: is `value` a {@link DPoPError}, optionally with the given code?
 * Never throws.
 * @param value - anything caught.
 * @param code - the code to match; any code when omitted.
 * @returns whether `value` is such an error.
 * @example
 * ```ts
 * catch (e) { if (isDPoPError(e, 'ERR_LOGIN_REQUIRED')) await auth.login() }
 * ```
 */
export function isDPoPError<C extends DPoPErrorCode = DPoPErrorCode>(
  value: unknown,
  code?: C,
): value is DPoPErrorFor<C> {
  return value instanceof DPoPError && (code === undefined || value.code === code)
}

/**
 * @internal Text a server chose (an `error`, an `error_description`), made fit for a message
 * or an event: tags and control, bidi and line-break characters removed, whitespace folded,
 * at most `max` characters. A server, or whoever forged an error redirect, must not put a
 * megabyte, markup or fake log lines into what the app logs and shows.
 */
export function serverText(value: string, max: number): string {
  const text = value
    .slice(0, max * 4)
    .replace(/<[^>]*>?/g, ' ')
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u001f\u007f-\u009f<>\u200b-\u200f\u2028-\u202e\u2066-\u2069]/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

/** @internal The error for a bad argument or option; the message names it. */
export function invalidArgument(message: string): DPoPError & CodeOf<'ERR_INVALID_ARGUMENT'> {
  return new DPoPError('ERR_INVALID_ARGUMENT', message) as DPoPError &
    CodeOf<'ERR_INVALID_ARGUMENT'>
}
