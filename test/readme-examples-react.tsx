// The README's React example (```tsx), compiled by `npm run typecheck`; test/readme.test.ts
// checks that it appears here verbatim. Not executed.
/* eslint-disable @typescript-eslint/no-unused-vars */
import { createRoot } from 'react-dom/client'
import { DPoPProvider, useDPoP } from '../src/react.ts'

// --- react
function Account() {
  const { status, isAuthenticated, user, login, logout, fetch } = useDPoP()
  if (status !== 'ready') return <p>{status}</p>
  if (!isAuthenticated) return <button onClick={() => void login()}>Sign in</button>
  const loadOrders = async () => (await fetch('https://api.example.com/orders')).json()
  return <button onClick={() => void logout()}>Sign out {user?.sub}</button>
}

createRoot(document.getElementById('root')!).render(
  <DPoPProvider
    config={{
      issuer: 'https://login.example.com',
      clientId: 'my-spa',
      redirectUri: `${location.origin}/`,
      scope: 'openid profile offline_access',
      apiOrigins: ['https://api.example.com'],
    }}
    onRedirect={(result) => { if (result?.returnTo) history.replaceState(null, '', result.returnTo) }}
  >
    <Account />
  </DPoPProvider>,
)
// --- end
