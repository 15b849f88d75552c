// The page's side of the refresh worker (docs/lost-refresh-answers.md).
import { createDPoPClient } from 'dpop-spa'

const auth = await createDPoPClient({
  issuer: 'https://login.example.com',
  clientId: 'my-spa',
  redirectUri: `${location.origin}/`,
  scope: 'openid offline_access',
  apiOrigins: ['https://api.example.com'],
  refreshWorker: navigator.serviceWorker.register('/sw.js', { type: 'module' }),
})

auth.subscribe((event) => {
  if (event.type === 'logout' && event.reason === 'refresh-lost') {
    // The answer to a refresh was lost and the server had rotated the refresh token.
    console.warn('Signed out: a refresh answer was lost. Please sign in again.')
  }
})
