// docs/errors.md. Type-checked by `npm run typecheck`; test/readme.test.ts checks that the page's
// block stands here verbatim.
import { isDPoPError, openKeyStore } from 'dpop-spa'

const keys = await openKeyStore({ name: 'my-app' })
try {
  await keys.load()
} catch (e) {
  if (isDPoPError(e, 'ERR_KEY_STORE_UNSUPPORTED')) {
    // Private mode or iOS Lockdown Mode: ask the user, or keep the key for this page only.
    const memoryKeys = await openKeyStore({ name: 'my-app', fallback: 'memory' })
  } else throw e
}
