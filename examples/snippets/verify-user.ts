// docs/client.md, "Who signed in": an atproto app checks the DID before the session is stored.
// Type-checked by `npm run typecheck`; test/readme.test.ts checks that the page's block stands
// here verbatim.
import { createDPoPClient } from 'dpop-spa'

/** The app's own lookup: the DID document names the PDS, whose metadata names its authorization server. */
declare function resolveIssuerOfDid(did: string): Promise<string>

const auth = await createDPoPClient({
  issuer: 'https://bsky.social',
  clientId: 'https://app.example.com/client-metadata.json',
  redirectUri: 'https://app.example.com/',
  scope: 'atproto transition:generic',
  apiOrigins: ['https://pds.example.com'],
  // resolveIssuerOfDid is the app's: DID document -> PDS -> its authorization server.
  verifyUser: async (user, { issuer }) =>
    user !== undefined && (await resolveIssuerOfDid(user.sub)) === issuer,
})

export { auth }
