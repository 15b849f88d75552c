/**
 * Reading what servers say when they refuse a request: `WWW-Authenticate` challenges
 * (RFC 9110 §11.6.1, RFC 9449 §7.1) and OAuth 2.0 JSON error bodies (RFC 6749 §5.2).
 * Everything here takes untrusted input and never throws.
 */

/** One challenge of a `WWW-Authenticate` header. */
export interface Challenge {
  /** The auth-scheme, lower-cased (`'dpop'`, `'bearer'`). */
  scheme: string
  /**
   * The auth-params; names lower-cased, quoted values unescaped. When a name occurs
   * twice (RFC 9110 forbids it) the first value wins. The object has no prototype, so a
   * param named `constructor` or `__proto__` is just data.
   */
  params: Record<string, string>
  /** The token68 form (`Basic dXNlcjpwYXNz`), when the challenge used it instead of params. */
  token68?: string
}

/** What a `DPoP` challenge says (RFC 9449 §7.1). */
export interface DPoPChallengeInfo {
  /** The `error` param, e.g. `use_dpop_nonce`, `invalid_token`, `invalid_dpop_proof`. */
  error?: string
  /** The `error_description` param, for humans (and for spotting `iat` rejections). */
  errorDescription?: string
  /** The `algs` param split on spaces: the JWS algorithms the server accepts. */
  algs?: string[]
}

/** An OAuth 2.0 error response body (RFC 6749 §5.2, RFC 9449 §8). */
export interface OAuthErrorBody {
  /** The `error` code, e.g. `invalid_grant`, `use_dpop_nonce`. */
  error: string
  /** The `error_description`, when present and well-formed. */
  errorDescription?: string
  /** The `error_uri`, when present and well-formed. */
  errorUri?: string
}

// Sticky patterns, each tried at the current position: shorter than hand-written scanners
// and as fast for headers of this size.
const OWS = /[ \t]*/y
// token = 1*tchar (RFC 9110 §5.6.2); may match empty, the callers check.
const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]*/y
// quoted-string with quoted-pairs (§5.6.4); an unterminated one does not match.
const QUOTED = /"((?:[^"\\]|\\[\s\S])*)"/y
// token68 (§11.2).
const TOKEN68 = /[-._~+/0-9A-Za-z]+=*/y
// Far more than any real server sends: a few challenges with a description each. What a
// hostile server sends beyond it is not read, so one header cannot cost much.
/** The most of a `WWW-Authenticate` value that is parsed, in characters. */
export const MAX_WWW_AUTHENTICATE_LENGTH = 8192
/** The most challenges returned from one `WWW-Authenticate` value. */
export const MAX_CHALLENGES = 32
// Recovery: up to the next comma that is not inside a quoted string (an unterminated one runs to the end).
const SKIP = /(?:[^,"]|"(?:[^"\\]|\\[\s\S]?)*"?)*/y

/**
 * Parses a `WWW-Authenticate` header value into its challenges.
 *
 * Follows RFC 9110 §11.6.1: several challenges in one value, comma-separated lists,
 * quoted strings with backslash escapes (commas inside quotes are data), token68,
 * case-insensitive scheme and param names (returned lower-cased). Malformed parts are
 * skipped up to the next comma; what is well-formed is still returned.
 *
 * Bounded: only the first 8192 characters are read and at most 32 challenges are
 * returned. With `options.until` (a scheme,
 * e.g. `'dpop'`), parsing stops once that challenge and its params are read.
 *
 * Never throws: any input (including `null` or a non-string) yields an array.
 *
 * @param header - the `WWW-Authenticate` header value (or `null`).
 * @param options - `until`: a scheme (e.g. `'dpop'`) after whose challenge parsing stops.
 * @returns the challenges, in order; empty when there are none.
 * @example
 * ```ts
 * parseWWWAuthenticate('DPoP error="use_dpop_nonce", algs="ES256", Bearer realm="api"')
 * // [{ scheme: 'dpop', params: { error: 'use_dpop_nonce', algs: 'ES256' } },
 * //  { scheme: 'bearer', params: { realm: 'api' } }]
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-11.6.1
 */
export function parseWWWAuthenticate(
  header: string | null | undefined,
  options?: { until?: string },
): Challenge[] {
  const out: Challenge[] = []
  if (typeof header !== 'string') return out
  const until = typeof options?.until === 'string' ? options.until.toLowerCase() : undefined
  // Cut at the last comma inside the cap, so the element cut in two is dropped, not misread.
  const s =
    header.length > MAX_WWW_AUTHENTICATE_LENGTH
      ? header.slice(0, Math.max(0, header.lastIndexOf(',', MAX_WWW_AUTHENTICATE_LENGTH)))
      : header
  let i = 0
  let current: Challenge | undefined
  let reached = false

  const eat = (pattern: RegExp): RegExpExecArray | null => {
    pattern.lastIndex = i
    const m = pattern.exec(s)
    if (m) i = pattern.lastIndex
    return m
  }
  const token = (): string => eat(TOKEN)?.[0] ?? ''
  // At OWS, then "," or the end: where a list element may end.
  const atElementEnd = (): boolean => {
    eat(OWS)
    return i >= s.length || s[i] === ','
  }
  const skipElement = () => eat(SKIP)
  // auth-param = token BWS "=" BWS ( token / quoted-string ), ending the element.
  const authParam = (): [string, string] | undefined => {
    const start = i
    const name = token()
    if (name !== '') {
      eat(OWS)
      if (s[i] === '=') {
        i++
        eat(OWS)
        // quoted-pair: the character after a backslash is data.
        const value =
          s[i] === '"' ? eat(QUOTED)?.[1]?.replace(/\\([\s\S])/g, '$1') : token() || undefined
        if (value !== undefined && atElementEnd()) return [name.toLowerCase(), value]
      }
    }
    i = start
    return undefined
  }
  // token68, ending the element.
  const token68 = (): string | undefined => {
    const start = i
    const value = eat(TOKEN68)?.[0]
    if (value !== undefined && atElementEnd()) return value
    i = start
    return undefined
  }
  // After a comma: is the next element an auth-param (token BWS "=") rather than a new scheme?
  const looksLikeParam = (): boolean => {
    const start = i
    const isParam = token() !== '' && (eat(OWS), s[i] === '=')
    i = start
    return isParam
  }
  const addParam = (p: [string, string]) => {
    if (current && !Object.hasOwn(current.params, p[0])) current.params[p[0]] = p[1]
  }

  while (i < s.length) {
    // Empty list elements and whitespace between them (RFC 9110 §5.6.1).
    const c = s[i]
    if (c === ',' || c === ' ' || c === '\t') {
      i++
      continue
    }
    if (current && looksLikeParam()) {
      const p = authParam()
      if (p) addParam(p)
      else skipElement()
      continue
    }
    const scheme = token()
    if (scheme === '') {
      current = undefined
      skipElement()
      continue
    }
    const next = s[i]
    if (next !== undefined && next !== ' ' && next !== '\t' && next !== ',') {
      // Not a scheme after all (e.g. `Basic"x"`): drop the element, and any params after it.
      current = undefined
      skipElement()
      continue
    }
    // A new challenge starts: done when the one asked for is complete, or at the cap.
    if (reached || out.length >= MAX_CHALLENGES) break
    current = {
      scheme: scheme.toLowerCase(),
      params: Object.create(null) as Record<string, string>,
    }
    out.push(current)
    reached = current.scheme === until
    if (atElementEnd()) continue
    const p = authParam()
    if (p) {
      addParam(p)
      continue
    }
    const t68 = token68()
    if (t68 !== undefined) {
      current.token68 = t68
      continue
    }
    skipElement()
  }
  return out
}

/**
 * Reads the first `DPoP` challenge among parsed challenges: its `error`,
 * `error_description` and `algs`. Returns `undefined` when there is no DPoP challenge.
 * Never throws.
 *
 * @param challenges - the output of {@link parseWWWAuthenticate}.
 * @returns the DPoP challenge, or `undefined`.
 * @example
 * ```ts
 * const dpop = readDPoPChallenge(parseWWWAuthenticate(response.headers.get('WWW-Authenticate')))
 * if (dpop?.error === 'use_dpop_nonce') retryWith(response.headers.get('DPoP-Nonce'))
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-7.1
 */
export function readDPoPChallenge(challenges: readonly Challenge[]): DPoPChallengeInfo | undefined {
  if (!Array.isArray(challenges)) return undefined
  const found = (challenges as readonly unknown[]).find(
    (c): c is Challenge =>
      typeof c === 'object' &&
      c !== null &&
      (c as Challenge).scheme === 'dpop' &&
      typeof (c as Challenge).params === 'object',
  )
  if (!found) return undefined
  const { params } = found
  const info: DPoPChallengeInfo = {}
  const error = params.error
  const description = params.error_description
  const algs = params.algs
  if (typeof error === 'string') info.error = error
  if (typeof description === 'string') info.errorDescription = description
  if (typeof algs === 'string') info.algs = algs.split(' ').filter((name) => name !== '')
  return info
}

// RFC 6749 §5.2: error and error_description are 1*( %x20-21 / %x23-5B / %x5D-7E ).
const NQSCHAR = /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/
// error-uri: URI-reference in %x21 / %x23-5B / %x5D-7E.
const URICHAR = /^[\x21\x23-\x5b\x5d-\x7e]+$/

/**
 * Reads an OAuth 2.0 error response body: `{ error, error_description?, error_uri? }`.
 * Accepts the parsed JSON value or its JSON text. Returns `undefined` when the body is
 * not such an error (no `error`, or one with characters RFC 6749 does not allow); drops
 * a malformed `error_description` or `error_uri` but keeps the `error`.
 * Never throws, whatever the body (proxies and throwing getters included).
 *
 * @param body - the parsed JSON value, or its text.
 * @returns the error, or `undefined`.
 * @example
 * ```ts
 * const e = parseOAuthErrorBody(await response.clone().json().catch(() => undefined))
 * if (e?.error === 'use_dpop_nonce') ...
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 */
export function parseOAuthErrorBody(body: unknown): OAuthErrorBody | undefined {
  try {
    let value = body
    if (typeof value === 'string') {
      try {
        value = JSON.parse(value) as unknown
      } catch {
        return undefined
      }
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
    const {
      error,
      error_description: description,
      error_uri: uri,
    } = value as Record<string, unknown>
    if (typeof error !== 'string' || !NQSCHAR.test(error)) return undefined
    const out: OAuthErrorBody = { error }
    if (typeof description === 'string' && NQSCHAR.test(description))
      out.errorDescription = description
    if (typeof uri === 'string' && URICHAR.test(uri)) out.errorUri = uri
    return out
  } catch {
    return undefined
  }
}
