/**
 * Node-side handles on the verifying resource server (demo/api/server.ts) and the
 * "other origin" recording server that Playwright starts (see playwright.config.ts).
 * Tests count at the server what the browser sent; these helpers only read and steer it.
 */
import { createHash } from 'node:crypto'
import type { RequestRecord, Stats } from '../demo/api/request-log.ts'
import type { ReceivedRequest } from '../demo/api/recording-server.ts'
import type { Tab } from './driver.ts'
import { PORTS } from './ports.ts'

/** Same defaults as playwright.config.ts. */
export const API_PORT = PORTS.fetchApi
export const OTHER_PORT = PORTS.fetchOther
/** The API origin as the page uses it (the only origin given to the signed fetch). */
export const API = `http://localhost:${API_PORT}`
/** The other origin: a different server, also on loopback. */
export const OTHER = `http://127.0.0.1:${OTHER_PORT}`
// Control calls go straight to the IPv4 loopback the servers bind to.
const CONTROL = `http://127.0.0.1:${API_PORT}/__control`

/** One request as the API server recorded it (its own type, demo/api/request-log.ts). */
export type Recorded = RequestRecord

/** POSTs to the API's control route `path` and returns its JSON, unchecked. Throws on a non-2xx. */
async function post(path: string, body: unknown = {}): Promise<unknown> {
  const response = await fetch(`${CONTROL}/${path}`, { method: 'POST', body: JSON.stringify(body) })
  if (!response.ok) throw new Error(`control ${path} answered ${response.status}`)
  return response.json()
}

/** `reply[key]`, checked to be a `type`; throws naming the control route otherwise. */
function member(path: string, reply: unknown, key: string, type: 'string'): string
function member(path: string, reply: unknown, key: string, type: 'number'): number
function member(
  path: string,
  reply: unknown,
  key: string,
  type: 'string' | 'number',
): string | number {
  const value: unknown =
    typeof reply === 'object' && reply !== null
      ? (reply as Record<string, unknown>)[key]
      : undefined
  if (typeof value === type && (typeof value === 'string' || typeof value === 'number'))
    return value
  throw new Error(`control ${path}: "${key}" is not a ${type} in ${JSON.stringify(reply)}`)
}

/** Clean state on both servers: stats, tokens, replay cache, clock, a new nonce; the other origin forgets its requests. */
export async function resetServers(): Promise<void> {
  await post('reset')
  const other = await fetch(`${OTHER}/__control/reset`, { method: 'POST' })
  if (!other.ok) throw new Error(`other origin reset answered ${other.status}`)
}

/** Mints a test access token bound to `jkt`. */
export async function mintToken(jkt: string, expiresIn?: number): Promise<string> {
  return member(
    'token',
    await post('token', expiresIn === undefined ? { jkt } : { jkt, expiresIn }),
    'access_token',
    'string',
  )
}

/** Revokes every token (or one). */
export async function revokeTokens(accessToken?: string): Promise<void> {
  await post('revoke', accessToken === undefined ? {} : { access_token: accessToken })
}

/** Rotates the nonce now and returns the new one. */
export async function rotateNonce(): Promise<string> {
  return member('rotate-nonce', await post('rotate-nonce'), 'nonce', 'string')
}

/** Schedules one rotation once the server has seen `after` more API requests. */
export async function rotateNonceAfter(after: number): Promise<void> {
  await post('rotate-nonce', { after })
}

/** Moves the server clock by `offsetMs` from real time. */
export async function setServerClock(offsetMs: number): Promise<void> {
  await post('clock', { offsetMs })
}

/** Requests the API server saw (preflights included, as outcome 'preflight'). */
export async function apiRequests(): Promise<Recorded[]> {
  const response = await fetch(`${CONTROL}/stats`)
  return ((await response.json()) as Stats).recent
}

/** Non-preflight requests to one path. */
export async function apiRequestsTo(path: string): Promise<Recorded[]> {
  return (await apiRequests()).filter((r) => r.path === path && r.outcome !== 'preflight')
}

/** Requests the other origin received. */
export async function otherRequests(): Promise<ReceivedRequest[]> {
  return (await fetch(`${OTHER}/__control/requests`)).json() as Promise<ReceivedRequest[]>
}

/** `ath` of a token, computed here in Node, independent of the SDK. */
export function ath(token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

/** Ends every open `/api/events` stream; the EventSource clients reconnect. Returns how many were open. */
export async function closeStreams(): Promise<number> {
  return member('sse-close', await post('sse-close'), 'closed', 'number')
}

/** What `/api/echo` answers (demo/api/server.ts): the Content-Type and the body it received, base64. */
export interface EchoReply {
  contentType: string | null
  body: string
}

/** `data` checked to be an `/api/echo` reply, as JSON parsed in the page. Throws naming what arrived otherwise. */
export function echoReply(data: unknown): EchoReply {
  if (
    typeof data === 'object' &&
    data !== null &&
    'body' in data &&
    typeof data.body === 'string' &&
    'contentType' in data
  ) {
    const { body, contentType } = data
    if (typeof contentType === 'string' || contentType === null) return { body, contentType }
  }
  throw new Error(`not an /api/echo reply: ${JSON.stringify(data)}`)
}

/** Opens `path` (a fixture with `window.dpop`), makes a key pair there (`window.keys`) and mints a token bound to it. */
export async function openWithKey(
  page: Tab,
  path: string,
): Promise<{ jkt: string; token: string }> {
  await page.goto(path)
  await page.waitFor(() => window.harnessReady === true)
  const jkt = await page.evaluate(async () => {
    const w = window
    w.keys = await w.dpop.generateKeyPair()
    return w.dpop.calculateThumbprint(w.keys.publicKey)
  })
  return { jkt, token: await mintToken(jkt) }
}
