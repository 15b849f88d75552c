import { createRoot } from 'react-dom/client'
import { DPoPProvider, useDPoP } from 'dpop-spa/react'

function Account() {
  const { status, isAuthenticated, user, login, logout, fetch } = useDPoP()
  if (status !== 'ready') return <p>{status}</p>
  if (!isAuthenticated) return <button onClick={() => void login()}>Sign in</button>
  const loadOrders = async (): Promise<unknown> =>
    (await fetch('https://api.example.com/orders')).json()
  return (
    <>
      <button onClick={() => void loadOrders().then(console.info)}>Load orders</button>
      <button onClick={() => void logout()}>Sign out {user?.sub}</button>
    </>
  )
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
    onRedirect={(result) => {
      if (result?.returnTo) history.replaceState(null, '', result.returnTo)
    }}
  >
    <Account />
  </DPoPProvider>,
)
