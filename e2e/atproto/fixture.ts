/**
 * What e2e/atproto/server.ts (under Node 22) and e2e/atproto.spec.ts (under the project's Node)
 * share: the test account, the addresses, and the shape of the server's recorded stats.
 * Plain data only, so both runtimes can load it.
 */
import { PORTS } from '../ports.ts'

/** The account atproto's sign-in page accepts: handle (or e-mail) and password. */
export const ATPROTO_USER = {
  account: {
    did: 'did:plc:dpopspaalice234567abcdef',
    // The access token's audience: the PDS that hosts the account (a did:web, as a PDS has).
    pds: 'did:web:pds.dpop-spa.test',
    deactivated: false,
    handle: 'alice.test',
    email: 'alice@dpop-spa.test',
    emailVerified: true,
    name: 'Alice',
  },
  password: 'correct horse battery staple',
} as const

/** The authorization server (its issuer) and the resource server, each its own origin. */
export const ATPROTO_AS = `http://localhost:${PORTS.atproto.as}`
export const ATPROTO_API = `http://localhost:${PORTS.atproto.api}`
/** The app: served by Vite on 127.0.0.1, because atproto accepts loopback redirect URIs on an IP literal only (RFC 8252 §8.3). */
export const ATPROTO_APP_ORIGIN = `http://127.0.0.1:${PORTS.vite}`
export const ATPROTO_APP_PATH = '/e2e/fixtures/atproto.html'
/** The scope every atproto client asks for (`openid` is refused there). */
export const ATPROTO_SCOPE = 'atproto transition:generic'

/** One request to the provider's endpoints, as the server saw it. */
export interface AsRequest {
  method: string
  path: string
  status: number
  /** The OAuth `error` of a JSON error answer (`use_dpop_nonce`, `invalid_grant`, …). */
  error?: string
  /** The thumbprint of the DPoP proof's key, when a proof came. */
  jkt?: string
  /** Whether that proof carried a nonce. */
  nonce?: boolean
  /** Why a revocation failed although it was answered 200 (RFC 7009 §2.2). */
  failure?: string
}

/** One request to the resource server. */
export interface ApiRequest extends AsRequest {
  sub?: string
  description?: string
}

/** `GET /__control/stats` of the atproto server. */
export interface AtprotoStats {
  as: AsRequest[]
  api: ApiRequest[]
  /** Grants issued since the last reset, in order: `authorization_code` or `refresh_token`. */
  grantsIssued: string[]
  /** What the token store holds now. */
  grants: {
    tokenId: string
    did: string
    clientId: string
    jkt: string | undefined
    refreshTokens: number
  }[]
}
