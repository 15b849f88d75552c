// docs/client.md: the client in depth. Type-checked by `npm run typecheck`; test/readme.test.ts
// checks that the page's block stands here verbatim.
import { createDPoPClient } from 'dpop-spa'

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

// Not in the page: what the snippet assumes the app has.
declare function render(user: unknown): void
