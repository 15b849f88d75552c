/**
 * The globals the test pages hold, typed, so the functions the specs run in the page
 * (`tab.evaluate(() => window.auth.login())`) are checked against the SDK's real types.
 *
 * Who sets what:
 * - e2e/fixtures/harness.html and clients.ts: `dpop` (the library from src/), `harnessReady`;
 *   clients.ts also `libs`.
 * - e2e/fixtures/client.html (and atproto.html, which adds `clientId`): `dpop`, `auth`, `events` (the client's events), `apiOrigin`,
 *   `ready`, and `startError` or `redirectError` when starting up or the redirect failed.
 * - e2e/fixtures/simulate.js: `pageErrors`, `simulated`.
 * - e2e/fixtures/react-app.ts and vue-app.ts: `redirects`, `renders` (React), `misuse`.
 * - The specs themselves, in the page: `keys`, `store`, `token`, `api`, `make`, `reply`, `run`,
 *   `clients`, … (see each member).
 *
 * A member is optional where a test reads it to see whether it is set (readiness flags,
 * start-up errors, a token a test may hand out later). The handles are declared as present:
 * a spec uses them only after waiting for its page's readiness flag or after setting them.
 * The pages are plain browser code; this module only describes them, nothing here runs.
 */
import type axios from 'axios'
import type ky from 'ky'
import type { ofetch } from 'ofetch'
import type { EventSource } from 'eventsource'
import type * as Dpop from '../src/index.ts'
import type {
  DPoPClient,
  DPoPClientEvent,
  DPoPErrorCode,
  DPoPFetch,
  DPoPFetchEvent,
  DPoPFetchOptions,
  KeyStore,
  RedirectResult,
  UserClaims,
} from '../src/index.ts'

/** An error as a page reports it to the test: plain data, since an Error does not cross to Node. */
export interface PageError {
  name: string
  code: string
  message: string
}

/** A call through a signed fetch, answered in the page (`window.reply`): the response, or the error. */
export interface PageReply {
  status?: number
  text?: string
  error?: PageError
}

/** A call through one of the HTTP clients (`window.run`): status and parsed body, or the error. */
export interface ClientReply {
  status?: number
  /** The response body as the client parsed it: JSON the server sent, unknown until checked. */
  data?: unknown
  error?: PageError & { status?: number }
}

/** The HTTP clients of e2e/http-clients.spec.ts, each reduced to one call shape. */
export type ClientName = 'axios' | 'ky' | 'ofetch'
/** What a client call takes: a method and a JSON body. */
export interface ClientCallOptions {
  method?: string
  json?: Record<string, unknown>
}

/** A client event as client.html records it: an error or storage-fallback event keeps its error's code and message only. */
export type RecordedClientEvent =
  | Exclude<DPoPClientEvent, { type: 'error' | 'storage-fallback' }>
  | { type: 'error' | 'storage-fallback'; code: DPoPErrorCode; message: string }

/** A message of the API's `/api/events` stream, as http-clients.spec.ts records it. */
export interface StreamMessage {
  jti: string
  ath: string
  sub: string
  lastEventId: string | null
  id: string
}

declare global {
  interface Window {
    /** The library, straight from src/ (harness.html, clients.ts, client.html). */
    dpop: typeof Dpop
    /** harness.html and clients.ts have loaded the library. */
    harnessReady?: boolean
    /** client.html has started (signed in, signed out, or failed: see `startError`). */
    ready?: boolean
    /** client.html's client. */
    auth: DPoPClient
    /** client.html: the client's events. The signed-fetch specs: the signed fetch's debug events. */
    events: (RecordedClientEvent | DPoPFetchEvent)[]
    /** client.html: the API origin it was given. */
    apiOrigin: string
    /** atproto.html: its loopback client id (`http://localhost?redirect_uri=…&scope=…`). */
    clientId: string
    /** client.html: why createDPoPClient threw. */
    startError?: PageError
    /** client.html: why handleRedirect threw (`error`: the OAuth error code, when there was one). */
    redirectError?: PageError & { error?: string | undefined }
    /** simulate.js: page errors and unhandled rejections, for drivers without console capture. */
    pageErrors: string[]
    /** simulate.js: the storage failure being simulated ('' for none). */
    simulated: string
    /** Specs: set to end simulate.js's `idb-lost` failure (storage works again). */
    idbRecovered?: boolean
    /** clients.ts: the HTTP clients, from node_modules. */
    libs: {
      axios: typeof axios
      ky: typeof ky
      ofetch: typeof ofetch
      EventSource: typeof EventSource
    }

    /** React and Vue fixtures: what `onRedirect` received, in order. */
    redirects: (RedirectResult | undefined)[]
    /** React fixture: renders of the app component. */
    renders: number
    /** React fixture: `name code` of each misuse error (two); Vue fixture: of its one misuse error. */
    misuse?: string[] | string

    /** Specs: a key pair made in the page. */
    keys: CryptoKeyPair
    /** interop.spec.ts: a second key pair, for proofs by the wrong key. */
    otherKeys: CryptoKeyPair
    /** key-store.spec.ts: the key store under test. */
    store: KeyStore
    /** key-store.spec.ts: a racing load-or-create's thumbprint. */
    racing: Promise<string>
    /** Specs: the access token the signed fetch sends. */
    token: string
    /** Specs: the token `onInvalidToken` hands out, once a test has set one. */
    nextToken?: string
    /** Specs: how often `onInvalidToken` was called. */
    invalidTokenCalls: number
    /** Specs: the signed fetch under test. */
    api: DPoPFetch
    /** signed-fetch.spec.ts: makes a signed fetch like `api`, with options changed. */
    make: (extra?: Partial<DPoPFetchOptions>) => DPoPFetch
    /** interop.spec.ts: a signed fetch for `origins`, with the device clock `skewMs` off. */
    signed: (origins: string[], skewMs?: number) => DPoPFetch
    /** Runs a fetch and returns what the caller would see, errors included, as plain data. */
    reply: (f: () => Promise<Response>) => Promise<PageReply>
    /** http-clients.spec.ts: runs a client call, errors returned as plain data. */
    run: (f: () => Promise<ClientReply>) => Promise<ClientReply>
    /** http-clients.spec.ts: the clients, built on `api` as docs/http-clients.md says. */
    clients: Record<ClientName, (url: string, o?: ClientCallOptions) => Promise<ClientReply>>
    /** http-clients.spec.ts: removes the XMLHttpRequest guard. */
    unguard: () => void
    /** http-clients.spec.ts: the EventSource on the signed fetch, its messages and error count. */
    es: EventSource
    messages: StreamMessage[]
    errors: number
    /** tokens.spec.ts: calls started in one evaluate, collected in the next. */
    calls: Promise<number[]>
    /** tokens.spec.ts, atproto.spec.ts: the key pair and refresh token from before a logout. */
    oldPair: CryptoKeyPair
    oldRefresh: string
    /** identity.spec.ts: what client.html's verifyUser was called with (?verify=). */
    verified: { user: UserClaims | undefined; issuer: string }[]
    /** atproto.spec.ts: the access token from before a logout. */
    oldAccess: string
    /** tokens.spec.ts: set before a redirecting logout, gone once the next document has loaded. */
    beforeLogout?: boolean
  }
}
