/**
 * Who signed in, as the app sees it: the user's claims, and the app's own check of the user
 * before a session is stored (`verifyUser`, `userInfo`).
 */

/**
 * The signed-in user: the ID token's claims (OpenID Connect Core §2), with the UserInfo
 * response's merged in when it was asked for; or, from a server that issues no ID token but
 * names the user in its token response (atproto: `sub` is the account's DID), `sub` and `iss`.
 */
export interface UserClaims {
  /** The subject: the user's identifier at the issuer. */
  readonly sub: string
  /** The issuer that vouches for `sub`. */
  readonly iss?: string
  readonly [claim: string]: unknown
}

/** What `DPoPClientConfig.verifyUser` is told beside the user. */
export interface VerifyUserContext {
  /** The issuer the tokens come from (its metadata's `issuer`). */
  readonly issuer: string
  /** The scope granted, when the server said. */
  readonly scope: string | undefined
  /** The token response's members other than the tokens themselves: `sub`, `scope`, `expires_in`, extensions. */
  readonly tokenResponse: Readonly<Record<string, unknown>>
}

/** When to ask the UserInfo endpoint at login (`DPoPClientConfig.userInfo`). */
export type UserInfoMode = 'auto' | 'always' | 'never'

/**
 * The app's check of who signed in (`DPoPClientConfig.verifyUser`), run before a session is
 * stored: `false` or a throw refuses the login (`ERR_USER_REFUSED`).
 * @param user - the user (see {@link UserClaims}), `undefined` when the server named none.
 * @param context - the issuer, the granted scope and the token response without the tokens.
 */
export type VerifyUser = (
  user: UserClaims | undefined,
  context: VerifyUserContext,
) => boolean | void | Promise<boolean | void>

// The ID token claims that say nothing about who the user is (OpenID Connect Core §2, §3.1.3.6).
const PROTOCOL_CLAIMS = new Set([
  'iss',
  'sub',
  'aud',
  'exp',
  'iat',
  'nbf',
  'jti',
  'auth_time',
  'nonce',
  'acr',
  'amr',
  'azp',
  'at_hash',
  'c_hash',
  'sid',
])
// The scopes whose claims an OpenID provider may put only in the UserInfo response (§5.4).
const CLAIM_SCOPES = new Set(['profile', 'email', 'address', 'phone'])
const TOKENS = new Set(['access_token', 'refresh_token', 'id_token'])

/**
 * @internal Whether a login asks the UserInfo endpoint: always for `'always'`; for `'auto'`
 * when `scope` asks for claims (profile, email, address, phone) and `user` has none of them.
 */
export function userInfoWanted(
  mode: UserInfoMode,
  scope: string,
  user: UserClaims | undefined,
): boolean {
  return (
    mode === 'always' ||
    (mode === 'auto' &&
      scope.split(' ').some((name) => CLAIM_SCOPES.has(name)) &&
      !Object.keys(user ?? {}).some((claim) => !PROTOCOL_CLAIMS.has(claim)))
  )
}

/** @internal A token response's members other than the tokens (what `verifyUser` is shown). */
export function withoutTokens(result: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(result).filter(([member]) => !TOKENS.has(member)))
}
