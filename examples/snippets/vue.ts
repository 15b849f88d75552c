// docs/bindings.md, Vue. Type-checked by `npm run typecheck`; test/readme.test.ts checks that the
// page's block stands here verbatim.
import { createApp, type Component } from 'vue'
import { createDPoP, useDPoP } from 'dpop-spa/vue'

createApp(App)
  .use(
    createDPoP({
      config: {
        issuer: 'https://login.example.com',
        clientId: 'my-spa',
        redirectUri: `${location.origin}/`,
        apiOrigins: ['https://api.example.com'],
      },
    }),
  )
  .mount('#app')
// in a component's setup():
const { isAuthenticated, user, login, logout, fetch } = useDPoP()

// Not in the page: the app's root component.
declare const App: Component
