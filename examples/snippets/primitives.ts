// docs/primitives.md. Type-checked by `npm run typecheck`; test/readme.test.ts checks that the
// page's block stands here verbatim.
import { calculateThumbprint, createProof, generateKeyPair } from 'dpop-spa'

const keyPair = await generateKeyPair() // ES256; the private key is not extractable
const jkt = await calculateThumbprint(keyPair.publicKey) // RFC 7638: dpop_jkt / cnf.jkt
const proof = await createProof(keyPair, {
  htm: 'GET',
  htu: 'https://api.example.com/me',
  accessToken, // adds ath
  nonce: 'server-nonce', // from DPoP-Nonce
})
await fetch('https://api.example.com/me', {
  headers: { Authorization: `DPoP ${accessToken}`, DPoP: proof },
})

// Not in the page: the token the authorization server issued, bound to keyPair.
declare const accessToken: string
