// docs/http-clients.md, "XMLHttpRequest: not signed, on purpose". Type-checked by
// `npm run typecheck`; test/readme.test.ts checks that the page's block stands here verbatim.
import { guardXMLHttpRequest } from 'dpop-spa'

const unguard = guardXMLHttpRequest({ origins: ['https://api.example.com'] })
// axios.get('https://api.example.com/me') on the default (XHR) adapter now rejects with
// DPoPError ERR_XHR_NOT_SIGNED instead of sending a request without a proof.
