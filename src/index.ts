/**
 * dpop-spa: DPoP (RFC 9449) for single-page apps.
 * @packageDocumentation
 */
export { DPoPError, KeyStoreError, ServerResponseError, OAuthError, isDPoPError } from './errors.js'
export { generateKeyPair, calculateThumbprint, exportPublicJwk } from './keys.js'
export { createProof, calculateAth, normalizeHtu, keyPairThumbprint } from './proof.js'
export { openKeyStore, KEY_STORE_DEFAULTS } from './key-store.js'
export { parseWWWAuthenticate, readDPoPChallenge, parseOAuthErrorBody } from './challenge.js'
export { createNonceCache, NONCE_CACHE_DEFAULTS } from './nonces.js'
export { createClock, CLOCK_DEFAULTS } from './clock.js'
export { createDPoPFetch, DPOP_FETCH_DEFAULTS } from './dpop-fetch.js'
export { installDPoPFetch } from './install.js'
export { createDPoPClient, CLIENT_DEFAULTS } from './client.js'
export { guardXMLHttpRequest } from './xhr-guard.js'

export type { CodeOf, DPoPErrorCode, DPoPErrorFor, DPoPErrorOptions, KeyStoreErrorCode, PlainDPoPErrorCode, ServerResponseErrorCode } from './errors.js'
export type { DPoPAlgorithm, GenerateKeyPairOptions, PublicJwk } from './keys.js'
export type { ProofClaims } from './proof.js'
export type { KeyStore, KeyStoreOptions } from './key-store.js'
export type { Challenge, DPoPChallengeInfo, OAuthErrorBody } from './challenge.js'
export type { NonceCache, NonceCacheOptions } from './nonces.js'
export type { DPoPClock, ClockOptions } from './clock.js'
export type { DPoPFetch, DPoPFetchEvent, DPoPFetchOptions, DPoPRetryReason, KeyPairSource } from './dpop-fetch.js'
export type { DPoPClient, DPoPClientConfig } from './client.js'
export type { XHRGuardOptions } from './xhr-guard.js'
export type { DPoPClientEvent, LoginOptions, LogoutOptions, LogoutReason, RedirectResult, UserClaims } from './tokens.js'
