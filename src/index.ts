/**
 * dpop-spa: DPoP (RFC 9449) for single-page apps.
 * @packageDocumentation
 */
export {
  DPoPError,
  KeyStoreError,
  ServerResponseError,
  OAuthError,
  isDPoPError,
} from './base/errors.js'
export { generateKeyPair, calculateThumbprint, exportPublicJwk } from './proof/keys.js'
export { createProof, calculateAth, normalizeHtu, keyPairThumbprint } from './proof/proof.js'
export { openKeyStore, KEY_STORE_DEFAULTS } from './key-store/key-store.js'
export {
  parseWWWAuthenticate,
  readDPoPChallenge,
  parseOAuthErrorBody,
} from './server-state/challenge.js'
export { createNonceCache, NONCE_CACHE_DEFAULTS } from './server-state/nonces.js'
export { createClock, CLOCK_DEFAULTS } from './server-state/clock.js'
export { createDPoPFetch, DPOP_FETCH_DEFAULTS } from './fetch/dpop-fetch.js'
export { installDPoPFetch } from './fetch/install.js'
export { createDPoPClient } from './client/client.js'
export { CLIENT_DEFAULTS } from './client/client-config.js'
export { guardXMLHttpRequest } from './fetch/xhr-guard.js'

export type {
  CodeOf,
  DPoPErrorCode,
  DPoPErrorFor,
  DPoPErrorOptions,
  KeyStoreErrorCode,
  PlainDPoPErrorCode,
  ServerResponseErrorCode,
} from './base/errors.js'
export type { DPoPAlgorithm, GenerateKeyPairOptions, PublicJwk } from './proof/keys.js'
export type { ProofClaims } from './proof/proof.js'
export type { KeyStore, KeyStoreOptions } from './key-store/key-store.js'
export type { Challenge, DPoPChallengeInfo, OAuthErrorBody } from './server-state/challenge.js'
export type { NonceCache, NonceCacheOptions } from './server-state/nonces.js'
export type { DPoPClock, ClockOptions } from './server-state/clock.js'
export type {
  DPoPFetch,
  DPoPFetchEvent,
  DPoPFetchOptions,
  DPoPRetryReason,
  KeyPairSource,
} from './fetch/dpop-fetch.js'
export type { DPoPClient } from './client/dpop-client.js'
export type { DPoPClientConfig } from './client/client-config.js'
export type { XHRGuardOptions } from './fetch/xhr-guard.js'
export type { DPoPClientEvent, LogoutReason } from './session/events.js'
export type { LoginOptions, RedirectResult } from './session/login.js'
export type { LogoutOptions } from './session/tokens.js'
export type { UserClaims, UserInfoMode, VerifyUser, VerifyUserContext } from './session/user.js'
