/**
 * dpop-spa: DPoP (RFC 9449) for single-page apps.
 * @packageDocumentation
 */
export { DPoPError, KeyStoreError, ServerResponseError, OAuthError, isDPoPError } from './errors.ts'
export { generateKeyPair, calculateThumbprint, exportPublicJwk } from './keys.ts'
export { createProof, calculateAth, normalizeHtu, keyPairThumbprint } from './proof.ts'
export { openKeyStore } from './key-store.ts'
export { parseWWWAuthenticate, readDPoPChallenge, parseOAuthErrorBody } from './challenge.ts'
export { createNonceCache } from './nonces.ts'
export { createClock } from './clock.ts'
export { createDPoPFetch, installDPoPFetch } from './dpop-fetch.ts'
export { createDPoPClient } from './client.ts'

export type { DPoPErrorCode, DPoPErrorOptions } from './errors.ts'
export type { DPoPAlgorithm, GenerateKeyPairOptions, PublicJwk } from './keys.ts'
export type { ProofClaims } from './proof.ts'
export type { KeyStore, KeyStoreOptions } from './key-store.ts'
export type { Challenge, DPoPChallengeInfo, OAuthErrorBody } from './challenge.ts'
export type { NonceCache, NonceCacheOptions } from './nonces.ts'
export type { DPoPClock, ClockOptions } from './clock.ts'
export type { DPoPFetch, DPoPFetchEvent, DPoPFetchOptions, DPoPRetryReason, KeyPairSource } from './dpop-fetch.ts'
export type { DPoPClient, DPoPClientConfig } from './client.ts'
export type { DPoPClientEvent, LoginOptions, LogoutOptions, LogoutReason, RedirectResult, UserClaims } from './tokens.ts'
