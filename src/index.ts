/**
 * dpop-spa: DPoP (RFC 9449) for single-page apps.
 * @packageDocumentation
 */
export { DPoPError, KeyStoreError, ServerResponseError, OAuthError, isDPoPError } from './errors.ts'
export { generateKeyPair, calculateThumbprint, exportPublicJwk } from './keys.ts'
export { createProof, calculateAth, normalizeHtu, keyPairThumbprint } from './proof.ts'
export { openKeyStore } from './key-store.ts'

export type { DPoPErrorCode, DPoPErrorOptions } from './errors.ts'
export type { DPoPAlgorithm, GenerateKeyPairOptions, PublicJwk } from './keys.ts'
export type { ProofClaims } from './proof.ts'
export type { KeyStore, KeyStoreOptions } from './key-store.ts'
