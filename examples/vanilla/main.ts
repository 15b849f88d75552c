import { createDPoPClient } from 'dpop-spa'

const auth = await createDPoPClient({
  issuer: 'https://login.example.com', // your authorization server
  clientId: 'my-spa',
  redirectUri: `${location.origin}/`, // this page; registered at the authorization server
  scope: 'openid profile offline_access',
  apiOrigins: ['https://api.example.com'], // tokens and proofs go to these origins only
})
await auth.handleRedirect() // back from the login page: code exchange bound to this browser's key

const button = (id: string) => document.querySelector<HTMLButtonElement>(`#${id}`)!
const output = document.querySelector('output')!
const show = () => {
  button('login').hidden = auth.isAuthenticated()
  button('call').hidden = button('logout').hidden = !auth.isAuthenticated()
  output.textContent = auth.isAuthenticated() ? `signed in as ${auth.getUser()?.sub}` : 'signed out'
}
auth.subscribe(show) // login, refresh and logout, in this tab or any other
show()

button('login').onclick = () => void auth.login()
button('call').onclick = async () => {
  const response = await auth.fetch('https://api.example.com/me') // signed: DPoP proof + token
  output.textContent = JSON.stringify(await response.json())
}
button('logout').onclick = () => void auth.logout() // revoke, forget the tokens, new key, every tab
