// docs/bring-your-own-tokens.md. Type-checked by `npm run typecheck`; test/readme.test.ts checks
// that the page's block stands here verbatim.
import { createDPoPFetch, installDPoPFetch, openKeyStore } from 'dpop-spa'

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

// Not in the page: the OAuth library the app already uses.
declare const myOAuthLibrary: {
  accessToken(): Promise<string | undefined>
  refresh(): Promise<string | undefined>
}
