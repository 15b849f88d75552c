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

// tchar (RFC 9110 §5.6.2) as a lookup over ASCII codes: the parser runs on every 401.
const TCHAR = new Uint8Array(128)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1
// token68 (RFC 9110 §11.2) minus the trailing "=" padding.
const T68 = new Uint8Array(128)
for (const c of '-._~+/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ') T68[c.charCodeAt(0)] = 1

const isTchar = (code: number) => code < 128 && TCHAR[code] === 1
const isT68 = (code: number) => code < 128 && T68[code] === 1

/**
 * Parses a `WWW-Authenticate` header value into its challenges.
 *
 * Follows RFC 9110 §11.6.1: several challenges in one value, comma-separated lists,
 * quoted strings with backslash escapes (commas inside quotes are data), token68,
 * case-insensitive scheme and param names (returned lower-cased). Malformed parts are
 * skipped up to the next comma; what is well-formed is still returned.
 *
 * Never throws: any input (including `null` or a non-string) yields an array.
 *
 * @example
 * ```ts
 * parseWWWAuthenticate('DPoP error="use_dpop_nonce", algs="ES256", Bearer realm="api"')
 * // [{ scheme: 'dpop', params: { error: 'use_dpop_nonce', algs: 'ES256' } },
 * //  { scheme: 'bearer', params: { realm: 'api' } }]
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-11.6.1
 */
export function parseWWWAuthenticate(header: string | null | undefined): Challenge[] {
  const out: Challenge[] = []
  if (typeof header !== 'string') return out
  const s = header
  const n = s.length
  let i = 0
  let current: Challenge | undefined

  const ows = () => {
    while (i < n && (s.charCodeAt(i) === 0x20 || s.charCodeAt(i) === 0x09)) i++
  }
  const token = (): string => {
    const start = i
    while (i < n && isTchar(s.charCodeAt(i))) i++
    return s.slice(start, i)
  }
  // At OWS, then "," or the end: where a list element may end.
  const atElementEnd = (): boolean => {
    ows()
    return i >= n || s.charCodeAt(i) === 0x2c
  }
  // Recovery: skip to the next comma that is not inside a quoted string.
  const skipElement = () => {
    let quoted = false
    while (i < n) {
      const c = s.charCodeAt(i)
      if (quoted) {
        if (c === 0x5c) i++
        else if (c === 0x22) quoted = false
      } else if (c === 0x22) quoted = true
      else if (c === 0x2c) return
      i++
    }
  }
  // quoted-string at s[i] === '"'; undefined when unterminated.
  const quotedString = (): string | undefined => {
    i++
    let value = ''
    let from = i
    while (i < n) {
      const c = s.charCodeAt(i)
      if (c === 0x22) {
        value += s.slice(from, i)
        i++
        return value
      }
      if (c === 0x5c) {
        if (i + 1 >= n) return undefined
        value += s.slice(from, i)
        from = i + 1 // quoted-pair: the next character is data
        i += 2
        continue
      }
      i++
    }
    return undefined
  }
  // auth-param = token BWS "=" BWS ( token / quoted-string ), ending the element.
  const authParam = (): [string, string] | undefined => {
    const start = i
    const name = token()
    if (name !== '') {
      ows()
      if (s.charCodeAt(i) === 0x3d) {
        i++
        ows()
        const value = s.charCodeAt(i) === 0x22 ? quotedString() : token() || undefined
        if (value !== undefined && atElementEnd()) return [name.toLowerCase(), value]
      }
    }
    i = start
    return undefined
  }
  // token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=", ending the element.
  const token68 = (): string | undefined => {
    const start = i
    while (i < n && isT68(s.charCodeAt(i))) i++
    if (i > start) {
      while (i < n && s.charCodeAt(i) === 0x3d) i++
      const value = s.slice(start, i)
      if (atElementEnd()) return value
    }
    i = start
    return undefined
  }
  // After a comma: is the next element an auth-param (token BWS "=") rather than a new scheme?
  const looksLikeParam = (): boolean => {
    const start = i
    const isParam = token() !== '' && (ows(), s.charCodeAt(i) === 0x3d)
    i = start
    return isParam
  }
  const addParam = (p: [string, string]) => {
    if (current && !Object.hasOwn(current.params, p[0])) current.params[p[0]] = p[1]
  }

  while (i < n) {
    // Empty list elements and whitespace between them (RFC 9110 §5.6.1).
    const c = s.charCodeAt(i)
    if (c === 0x2c || c === 0x20 || c === 0x09) {
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
    const next = s.charCodeAt(i)
    if (i < n && next !== 0x20 && next !== 0x09 && next !== 0x2c) {
      // Not a scheme after all (e.g. `Basic"x"`): drop the element, and any params after it.
      current = undefined
      skipElement()
      continue
    }
    current = { scheme: scheme.toLowerCase(), params: Object.create(null) as Record<string, string> }
    out.push(current)
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
    (c): c is Challenge => typeof c === 'object' && c !== null && (c as Challenge).scheme === 'dpop' && typeof (c as Challenge).params === 'object',
  )
  if (!found) return undefined
  const { params } = found
  const info: DPoPChallengeInfo = {}
  const error = params.error
  const description = params.error_description
  const algs = params.algs
  if (typeof error === 'string') info.error = error
  if (typeof description === 'string') info.errorDescription = description
  if (typeof algs === 'string') info.algs = algs.split(' ').filter((a) => a !== '')
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
    const { error, error_description: description, error_uri: uri } = value as Record<string, unknown>
    if (typeof error !== 'string' || !NQSCHAR.test(error)) return undefined
    const out: OAuthErrorBody = { error }
    if (typeof description === 'string' && NQSCHAR.test(description)) out.errorDescription = description
    if (typeof uri === 'string' && URICHAR.test(uri)) out.errorUri = uri
    return out
  } catch {
    return undefined
  }
}
