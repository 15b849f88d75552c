/**
 * The demo SPA: signs in with a DPoP-bound authorization code flow, calls the API with the
 * signed fetch, shows that the private key cannot be exported, and lets you replay the
 * access token from a client without the key. It uses dpop-spa the way an app does:
 * `import { createDPoPClient } from 'dpop-spa'`.
 */
import {
  createDPoPClient,
  isDPoPError,
  type DPoPClient,
  type DPoPClientEvent,
  type DPoPFetchEvent,
} from 'dpop-spa'
import { createAsLoggingFetch } from './as-fetch.ts'
import { demoConfig } from './config.ts'
import { createLogView, type LogEntry } from './log-view.ts'
import { jwtClaims, shorten, shortenValues } from './redact.ts'
import { replayStolenToken } from './thief.ts'

const config = demoConfig()

function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const el = document.getElementById(id)
  if (!(el instanceof type)) throw new Error(`demo page: #${id} is missing`)
  return el
}

const ui = {
  status: byId('status', HTMLElement),
  user: byId('user', HTMLElement),
  thumbprint: byId('thumbprint', HTMLElement),
  extractable: byId('extractable', HTMLElement),
  exportAttempt: byId('export-attempt', HTMLElement),
  storage: byId('storage', HTMLElement),
  tokenBinding: byId('token-binding', HTMLElement),
  tokenExpiry: byId('token-expiry', HTMLElement),
  signIn: byId('sign-in', HTMLButtonElement),
  callGet: byId('call-get', HTMLButtonElement),
  callPost: byId('call-post', HTMLButtonElement),
  replay: byId('replay', HTMLButtonElement),
  signOut: byId('sign-out', HTMLButtonElement),
  autoCall: byId('auto-call', HTMLInputElement),
  result: byId('result', HTMLElement),
  replayResult: byId('replay-result', HTMLElement),
  clearLog: byId('clear-log', HTMLButtonElement),
  apiOrigin: byId('api-origin', HTMLElement),
  issuer: byId('issuer', HTMLElement),
}

const log = createLogView(byId('log', HTMLOListElement))
const add = (entry: LogEntry): void => log.add(entry)
ui.apiOrigin.textContent = config.apiOrigin
ui.issuer.textContent = config.issuer

/** The signed fetch's debug events, as log lines: the proof is decoded, shortened, never signed material. */
function onFetchEvent(event: DPoPFetchEvent): void {
  switch (event.type) {
    case 'proof':
      add({
        kind: 'request',
        text: `${event.method} ${event.url}${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}: DPoP proof${event.claims.nonce ? ' with nonce' : ' without nonce'}${event.claims.ath ? ', ath binds it to the token' : ''}`,
        details: {
          'proof header': shortenValues(event.header),
          'proof claims': shortenValues(event.claims),
        },
      })
      return
    case 'response':
      add({
        kind: 'response',
        text: `${event.method} ${event.url} → ${event.status}`,
        status: event.status,
      })
      return
    case 'nonce':
      add({
        kind: 'nonce',
        text: `DPoP-Nonce from ${event.origin} learned (${shorten(event.nonce)})`,
      })
      return
    case 'retry':
      add({
        kind: 'retry',
        text: `${event.url}: ${event.reason === 'use_dpop_nonce' ? 'use_dpop_nonce challenge, sending again with the new nonce' : event.reason === 'invalid_token' ? 'invalid_token, sending again with a refreshed token' : 'proof iat refused, sending again with the server clock'} (attempt ${event.attempt})`,
      })
      return
    case 'clock':
      add({
        kind: 'clock',
        text: `server clock is ${Math.round(event.offsetMs / 1000)} s off this device (learned from ${event.source === 'date' ? 'the Date header' : 'an iat rejection'}); proofs use the server's time`,
      })
      return
  }
}

function onClientEvent(event: DPoPClientEvent): void {
  switch (event.type) {
    case 'login':
      add({
        kind: 'login',
        text: `signed in as ${event.user?.sub ?? '(unknown)'}${event.fromOtherTab ? ' (in another tab)' : ''}`,
      })
      break
    case 'refresh':
      add({
        kind: 'refresh',
        text: `access token refreshed${event.fromOtherTab ? ' by another tab' : ''} with a DPoP-bound refresh token; new one expires at ${new Date(event.expiresAt).toLocaleTimeString([], { hour12: false })}`,
      })
      break
    case 'logout':
      add({ kind: 'logout', text: `signed out (${event.reason})` })
      break
    case 'error':
      add({ kind: 'error', text: `${event.error.code}: ${event.error.message}` })
      break
    case 'storage-fallback':
      add({
        kind: 'error',
        text: `IndexedDB failed (${event.error.code}); this page runs on a memory key until it reloads`,
      })
      break
  }
  void render()
  if (event.type === 'login' || event.type === 'refresh') void renderTokenBinding()
}

function reportError(what: string, error: unknown): void {
  const text = isDPoPError(error)
    ? `${error.code}: ${error.message}`
    : error instanceof Error
      ? `${error.name}: ${error.message}`
      : String(error)
  add({ kind: 'error', text: `${what}: ${text}` })
}

let auth: DPoPClient | undefined
let expiresAt: number | undefined

/**
 * Shows the session and the key as they are right now. Makes no network request, so it
 * can follow any event (an `error` event included) without ever causing another one.
 */
async function render(): Promise<void> {
  if (!auth) return
  const signedIn = auth.isAuthenticated()
  ui.status.textContent = signedIn ? 'Signed in' : 'Signed out'
  ui.status.dataset.state = signedIn ? 'signed-in' : 'signed-out'
  const user = auth.getUser()
  const name = typeof user?.name === 'string' ? user.name : undefined
  ui.user.textContent = user ? `${user.sub}${name && name !== user.sub ? ` (${name})` : ''}` : '—'
  for (const b of [ui.callGet, ui.callPost, ui.replay, ui.signOut]) b.disabled = !signedIn
  ui.signIn.disabled = signedIn
  if (!signedIn) {
    ui.tokenBinding.textContent = '—'
    expiresAt = undefined
    tick()
  }
  try {
    const [thumbprint, pair] = await Promise.all([auth.keys.thumbprint(), auth.keys.load()])
    ui.thumbprint.textContent = thumbprint
    // Read live from the CryptoKey, not from a constant.
    ui.extractable.textContent = String(pair.privateKey.extractable)
    ui.extractable.dataset.value = String(pair.privateKey.extractable)
    // Show, not tell: ask WebCrypto for the private key and report what it says.
    ui.exportAttempt.textContent = await crypto.subtle.exportKey('jwk', pair.privateKey).then(
      () => 'exported (this should never happen)',
      (e: unknown) => `refused: ${e instanceof Error ? e.name : String(e)}`,
    )
    ui.storage.textContent =
      auth.keys.storage === 'indexeddb'
        ? 'IndexedDB (the CryptoKey object itself, not its bytes)'
        : 'memory only'
  } catch (error) {
    reportError('reading the key', error)
  }
}

/**
 * Shows which key the access token is bound to (`cnf.jkt`) and when it expires, from the
 * token's claims; the token itself never reaches the page. Called after a sign-in, a
 * refresh or an API call, when the token is fresh: `getAccessToken()` refreshes an
 * expiring token, and a refresh must come from a user action, never from a re-render.
 */
async function renderTokenBinding(): Promise<void> {
  if (!auth?.isAuthenticated()) return
  try {
    const [token, thumbprint] = await Promise.all([auth.getAccessToken(), auth.keys.thumbprint()])
    const claims = token ? jwtClaims(token) : undefined
    const jkt = (claims?.cnf as { jkt?: unknown } | undefined)?.jkt
    ui.tokenBinding.textContent =
      typeof jkt === 'string'
        ? `cnf.jkt = ${jkt} ${jkt === thumbprint ? "(this browser's key)" : '(NOT this key)'}`
        : '—'
    expiresAt = typeof claims?.exp === 'number' ? claims.exp * 1000 : undefined
    tick()
  } catch (error) {
    reportError('reading the access token', error)
  }
}

function tick(): void {
  if (expiresAt === undefined) {
    ui.tokenExpiry.textContent = '—'
    return
  }
  const left = Math.round((expiresAt - Date.now()) / 1000)
  ui.tokenExpiry.textContent =
    left > 0
      ? `in ${left} s (refreshed shortly before, on the next call)`
      : 'expired; the next call refreshes it first'
}

async function showResponse(response: Response): Promise<void> {
  const text = await response.text()
  let shown = text
  try {
    const body = JSON.parse(text) as Record<string, unknown>
    // /api/echo returns the body it received, base64: show it as text.
    if (typeof body.body === 'string') {
      const sent = atob(body.body)
      try {
        body.body = JSON.parse(sent) as unknown
      } catch {
        body.body = sent
      }
    }
    shown = JSON.stringify(shortenValues(body, 24), null, 2)
  } catch {
    // not JSON: show as is
  }
  ui.result.dataset.status = String(response.status)
  ui.result.textContent = `HTTP ${response.status}\n${shown}`
}

async function callApi(method: 'GET' | 'POST'): Promise<void> {
  if (!auth) return
  try {
    const response =
      method === 'GET'
        ? await auth.fetch(`${config.apiOrigin}/api/me`)
        : await auth.fetch(`${config.apiOrigin}/api/echo`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ hello: 'DPoP', sentAt: new Date().toISOString() }),
          })
    await showResponse(response)
    await renderTokenBinding()
  } catch (error) {
    reportError(`${method} failed`, error)
  }
  await render()
}

async function replay(): Promise<void> {
  if (!auth) return
  ui.replayResult.replaceChildren()
  try {
    const token = await auth.getAccessToken()
    if (!token) {
      add({ kind: 'error', text: 'no access token to steal: sign in first' })
      return
    }
    add({
      kind: 'thief',
      text: "copied the access token; replaying it from a client without this browser's key",
    })
    const url = `${config.apiOrigin}/api/me`
    for (const outcome of await replayStolenToken(token, url)) {
      const reason = outcome.body
        ? `${outcome.body.error ?? ''} (check: ${outcome.body.check ?? '?'}): ${outcome.body.error_description ?? ''}`
        : 'no JSON body'
      add({
        kind: 'thief',
        text: `GET ${url} with ${outcome.attempt} → ${outcome.status} ${reason}`,
        status: outcome.status,
        details: {
          ...(outcome.body ? { 'API error body': outcome.body } : {}),
          'nonce challenge answered first': outcome.neededNonce,
        },
      })
      const row = document.createElement('li')
      row.dataset.status = String(outcome.status)
      row.dataset.check = outcome.body?.check ?? ''
      row.className = outcome.status === 401 || outcome.status === 400 ? 'refused' : 'accepted'
      const what = document.createElement('strong')
      what.textContent = outcome.attempt
      const verdict = document.createElement('span')
      verdict.textContent = ` → ${outcome.status} ${outcome.status >= 400 ? 'refused' : 'ACCEPTED'}: ${reason}`
      row.append(what, verdict)
      ui.replayResult.append(row)
    }
  } catch (error) {
    reportError('replay', error)
  }
}

async function main(): Promise<void> {
  auth = await createDPoPClient({
    issuer: config.issuer,
    clientId: config.clientId,
    redirectUri: config.redirectUri,
    postLogoutRedirectUri: config.redirectUri,
    scope: 'openid profile offline_access api',
    apiOrigins: [config.apiOrigin],
    resource: config.apiOrigin,
    fetch: createAsLoggingFetch(new URL(config.issuer).origin, add),
    debug: onFetchEvent,
  })
  auth.subscribe(onClientEvent)
  try {
    const result = await auth.handleRedirect()
    if (result)
      add({
        kind: 'info',
        text: "authorization code exchanged with a DPoP proof; tokens are bound to this browser's key",
      })
  } catch (error) {
    reportError('sign-in failed', error)
  }
  await render()
  await renderTokenBinding()
}

const run = (what: string, task: () => Promise<void>) => () => {
  task().catch((error: unknown) => reportError(what, error))
}

ui.signIn.addEventListener(
  'click',
  run('sign in', async () => {
    if (!auth) return
    add({
      kind: 'info',
      text: 'redirecting to the authorization server (PKCE S256, dpop_jkt binds the code to this key)',
    })
    await auth.login()
  }),
)
ui.callGet.addEventListener(
  'click',
  run('GET', () => callApi('GET')),
)
ui.callPost.addEventListener(
  'click',
  run('POST', () => callApi('POST')),
)
ui.replay.addEventListener('click', run('replay', replay))
ui.signOut.addEventListener(
  'click',
  run('sign out', async () => {
    if (!auth) return
    const before = await auth.keys.thumbprint()
    await auth.logout()
    const after = await auth.keys.thumbprint()
    add({
      kind: 'info',
      text: `refresh token revoked, tokens forgotten, key replaced: ${shorten(before)} → ${shorten(after)}`,
    })
    ui.result.textContent = ''
    ui.replayResult.replaceChildren()
    await render()
  }),
)
ui.clearLog.addEventListener('click', () => log.clear())

// "Keep calling": shows refreshes and nonce rotations without clicking.
let autoTimer: ReturnType<typeof setInterval> | undefined
ui.autoCall.addEventListener('change', () => {
  if (autoTimer !== undefined) clearInterval(autoTimer)
  autoTimer = ui.autoCall.checked
    ? setInterval(() => {
        if (auth?.isAuthenticated()) void callApi('GET')
      }, 3000)
    : undefined
})
setInterval(tick, 1000)

main().catch((error: unknown) => {
  ui.status.textContent = 'Could not start'
  ui.status.dataset.state = 'error'
  reportError('start-up', error)
})
