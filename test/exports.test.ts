// @vitest-environment node
// Pins the runtime exports: an API change must show up here, on purpose.
import { expect, it } from 'vitest'
import * as api from '../src/index.ts'

it('exports exactly the public runtime API', () => {
  expect(Object.keys(api).sort()).toEqual(
    [
      'CLIENT_DEFAULTS',
      'CLOCK_DEFAULTS',
      'DPOP_FETCH_DEFAULTS',
      'DPoPError',
      'KEY_STORE_DEFAULTS',
      'KeyStoreError',
      'NONCE_CACHE_DEFAULTS',
      'OAuthError',
      'ServerResponseError',
      'calculateAth',
      'calculateThumbprint',
      'createClock',
      'createDPoPClient',
      'createDPoPFetch',
      'createNonceCache',
      'createProof',
      'exportPublicJwk',
      'generateKeyPair',
      'guardXMLHttpRequest',
      'installDPoPFetch',
      'isDPoPError',
      'keyPairThumbprint',
      'normalizeHtu',
      'openKeyStore',
      'parseOAuthErrorBody',
      'parseWWWAuthenticate',
      'readDPoPChallenge',
    ].sort(),
  )
})
