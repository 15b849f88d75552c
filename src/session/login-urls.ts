/**
 * The app's URLs around a login: the parameters an authorization response adds to the
 * redirect URI (removed from the address bar afterwards), and where the user may return to.
 */

/** @internal The parameters of an authorization response (RFC 6749 §4.1.2, RFC 9207, OIDC session management). */
export const AUTH_RESPONSE_PARAMS = [
  'code',
  'state',
  'iss',
  'error',
  'error_description',
  'error_uri',
  'session_state',
]

/**
 * @internal `returnTo` as a path of this app (path + query + hash), or `undefined` when it
 * points anywhere else: another origin, `//host`, `javascript:`, `data:`.
 */
export function appPath(returnTo: unknown, appUrl: string): string | undefined {
  if (typeof returnTo !== 'string') return undefined
  let url: URL
  try {
    url = new URL(returnTo, appUrl)
  } catch {
    return undefined
  }
  if (url.origin !== new URL(appUrl).origin || !/^https?:$/.test(url.protocol)) return undefined
  return url.pathname + url.search + url.hash
}
