// The refresh worker (docs/lost-refresh-answers.md): the whole service worker script.
import { serveRefreshes } from 'dpop-spa/sw'

serveRefreshes()
