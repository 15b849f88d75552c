// The README's TypeScript examples, compiled by `npm run typecheck`; test/readme.test.ts
// checks that every ```ts block of the README appears here verbatim. Not executed.
/* eslint-disable @typescript-eslint/no-unused-vars */
import {
  createDPoPClient,
  createDPoPFetch,
  createProof,
  generateKeyPair,
  calculateThumbprint,
  installDPoPFetch,
  isDPoPError,
  openKeyStore,
  guardXMLHttpRequest,
  type DPoPClient,
} from '../src/index.ts'
import axios from 'axios'
import ky from 'ky'
import { ofetch } from 'ofetch'
import { EventSource } from 'eventsource'
import { createApp, type Component } from 'vue'
import { createDPoP, useDPoP } from '../src/vue.ts'

declare const myOAuthLibrary: { accessToken(): Promise<string | undefined>; refresh(): Promise<string | undefined> }
declare function render(user: unknown): void

export async function facade(): Promise<void> {
// --- facade
const auth = await createDPoPClient({
  issuer: 'https://login.example.com',
  clientId: 'my-spa',
  redirectUri: `${location.origin}/callback`,
  scope: 'openid profile offline_access',
  apiOrigins: ['https://api.example.com'], // tokens and proofs go to these origins only
})
auth.subscribe((event) => {
  if (event.type === 'logout') console.info('signed out:', event.reason)
})
await auth.handleRedirect() // on the redirect URI: code exchange bound to the key
if (!auth.isAuthenticated()) await auth.login()
render(auth.getUser())
const me = await auth.fetch('https://api.example.com/me') // signed, nonce- and refresh-aware
const uninstall = auth.install() // optional: window.fetch now signs calls to apiOrigins
await auth.logout() // revoke, forget the tokens, new key, every tab
// --- end
}

export async function bringYourOwnTokens(): Promise<void> {
// --- byo
const keys = await openKeyStore({ name: 'my-app' })
const api = createDPoPFetch({
  keys,
  origins: ['https://api.example.com'],
  getAccessToken: () => myOAuthLibrary.accessToken(),
  onInvalidToken: () => myOAuthLibrary.refresh(),
})
const response = await api('https://api.example.com/orders', {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ item: 42 }),
})
const restore = installDPoPFetch(api) // or sign every window.fetch to those origins
// --- end
}

export async function primitives(): Promise<void> {
const accessToken = 'token-from-your-authorization-server'
// --- primitives
const keyPair = await generateKeyPair() // ES256; the private key is not extractable
const jkt = await calculateThumbprint(keyPair.publicKey) // RFC 7638: dpop_jkt / cnf.jkt
const proof = await createProof(keyPair, {
  htm: 'GET',
  htu: 'https://api.example.com/me',
  accessToken, // adds ath
  nonce: 'server-nonce', // from DPoP-Nonce
})
await fetch('https://api.example.com/me', { headers: { Authorization: `DPoP ${accessToken}`, DPoP: proof } })
// --- end
}

export async function errors(): Promise<void> {
const keys = await openKeyStore({ name: 'my-app' })
// --- errors
try {
  await keys.load()
} catch (e) {
  if (isDPoPError(e, 'ERR_KEY_STORE_UNSUPPORTED')) {
    // Private mode or iOS Lockdown Mode: ask the user, or keep the key for this page only.
    const memoryKeys = await openKeyStore({ name: 'my-app', fallback: 'memory' })
  } else throw e
}
// --- end
}

export async function httpClients(auth: DPoPClient): Promise<void> {
// --- clients
// axios >= 1.12.0: its fetch adapter takes a custom fetch in env.fetch. No User-Agent header:
// Firefox would send axios's, and a cross-origin API then has to allow it in CORS.
const http = axios.create({ adapter: 'fetch', env: { fetch: auth.fetch }, headers: { 'User-Agent': false } })
const { data: me } = await http.get('https://api.example.com/me')

// ky and ofetch take a fetch too.
const kyApi = ky.create({ fetch: auth.fetch })
const orders = await kyApi.post('https://api.example.com/orders', { json: { item: 42 } }).json()
const $api = ofetch.create({}, { fetch: auth.fetch })
const profile = await $api('https://api.example.com/me')

// Server-sent events: the eventsource package (v3+) opens and reopens the stream through fetch.
const events = new EventSource('https://api.example.com/events', { fetch: auth.fetch })
events.onmessage = (event) => console.info(event.data)
// --- end
}

export function xhrGuard(): void {
// --- xhr
const unguard = guardXMLHttpRequest({ origins: ['https://api.example.com'] })
// axios.get('https://api.example.com/me') on the default (XHR) adapter now rejects with
// DPoPError ERR_XHR_NOT_SIGNED instead of sending a request without a proof.
// --- end
}

export function vue(App: Component): void {
// --- vue
createApp(App)
  .use(createDPoP({
    config: {
      issuer: 'https://login.example.com',
      clientId: 'my-spa',
      redirectUri: `${location.origin}/`,
      apiOrigins: ['https://api.example.com'],
    },
  }))
  .mount('#app')
// in a component's setup():
const { isAuthenticated, user, login, logout, fetch } = useDPoP()
// --- end
}
