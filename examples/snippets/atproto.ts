// docs/servers.md, "atproto (Bluesky PDS)": a development client of an atproto PDS with the
// loopback client id form. Type-checked by `npm run typecheck`; test/readme.test.ts checks that
// the page's block stands here verbatim.
import { createDPoPClient } from 'dpop-spa'

const redirectUri = 'http://127.0.0.1:5199/callback' // loopback redirects: 127.0.0.1, never localhost
const scope = 'atproto transition:generic' // `openid` (the default) is refused there
const auth = await createDPoPClient({
  issuer: 'https://pds.example.com', // the account's authorization server
  clientId: `http://localhost?${new URLSearchParams({ redirect_uri: redirectUri, scope })}`, // development; a real app publishes a client metadata document at an https client id
  redirectUri,
  scope,
  apiOrigins: ['https://pds.example.com'],
})

export { auth }
