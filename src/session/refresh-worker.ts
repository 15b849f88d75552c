/**
 * The page's half of the refresh worker (`dpop-spa/sw`): what a page sends a service worker
 * so that it makes a refresh-token request whose answer outlives the page (a reload or a
 * closed tab drops the page's own requests at once), and what comes back. Internal.
 *
 * The worker holds nothing the page does not: it reads the same non-extractable key and the
 * same tokens from this origin's IndexedDB, and sends them only to the token endpoint the
 * page names, which any script of this origin could do from the page itself.
 */
import type { AuthorizationServer } from 'oauth4webapi'
import {
  DPoPError,
  KeyStoreError,
  OAuthError,
  ServerResponseError,
  type KeyStoreErrorCode,
  type ServerResponseErrorCode,
} from '../base/errors.js'
import type { DPoPAlgorithm } from '../proof/keys.js'
import type { LogoutReason } from './events.js'
import type { Session } from './session.js'

/** @internal What the worker needs to refresh the session of one client. Plain data. */
export interface RefreshRequest {
  readonly type: 'dpop-spa:refresh'
  readonly v: 1
  readonly name: string
  readonly alg: DPoPAlgorithm
  readonly as: AuthorizationServer
  readonly clientId: string
  readonly resource: readonly string[]
  readonly insecure: boolean
  readonly refreshLeewayMs: number
  readonly lockTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly fallbackLifetimeMs: number
  readonly storageTimeoutMs: number
  /** The access token a resource server refused, when that is why. */
  readonly failedToken: string | undefined
}

/** @internal The worker's answer: the session after the refresh (validated by the page), or the error. */
export type RefreshReply =
  | {
      readonly ok: true
      readonly session: Session | undefined
      readonly ended: LogoutReason | undefined
    }
  | {
      readonly ok: false
      readonly code: string
      readonly message: string
      readonly error: string | undefined
      readonly ended: LogoutReason | undefined
    }

const NAME = /^[A-Za-z0-9._-]{1,64}$/
const ms = (value: unknown) => typeof value === 'number' && Number.isFinite(value) && value > 0
const str = (value: unknown) =>
  typeof value === 'string' && value.length > 0 && value.length <= 16_384

/** @internal Whether `message` is a refresh request as this version sends it (checked like user input). */
export function isRefreshRequest(message: unknown): message is RefreshRequest {
  if (typeof message !== 'object' || message === null) return false
  const request = message as Record<keyof RefreshRequest, unknown>
  const as = request.as as Partial<AuthorizationServer> | undefined
  return (
    request.type === 'dpop-spa:refresh' &&
    request.v === 1 &&
    typeof request.name === 'string' &&
    NAME.test(request.name) &&
    (request.alg === 'ES256' || request.alg === 'EdDSA') &&
    typeof as === 'object' &&
    as !== null &&
    str(as.issuer) &&
    str(as.token_endpoint) &&
    URL.canParse(as.token_endpoint!) &&
    str(request.clientId) &&
    Array.isArray(request.resource) &&
    request.resource.every(str) &&
    typeof request.insecure === 'boolean' &&
    ms(request.refreshLeewayMs) &&
    ms(request.lockTimeoutMs) &&
    ms(request.requestTimeoutMs) &&
    ms(request.fallbackLifetimeMs) &&
    ms(request.storageTimeoutMs) &&
    (request.failedToken === undefined || str(request.failedToken))
  )
}

/**
 * @internal The active worker of `registration`, once it is active; `undefined` when there is
 * none within `timeoutMs` or the registration failed (the page then refreshes by itself).
 */
export async function activeWorker(
  registration: ServiceWorkerRegistration | Promise<ServiceWorkerRegistration>,
  timeoutMs: number,
): Promise<ServiceWorker | undefined> {
  try {
    const registered = await registration
    if (registered.active) return registered.active
    const next = registered.installing ?? registered.waiting
    if (!next) return undefined
    return await new Promise<ServiceWorker | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs)
      next.addEventListener('statechange', () => {
        if (next.state === 'activated') {
          clearTimeout(timer)
          resolve(next)
        }
        if (next.state === 'redundant') {
          clearTimeout(timer)
          resolve(registered.active ?? undefined)
        }
      })
    })
  } catch {
    return undefined
  }
}

/**
 * @internal Sends `request` to `worker` and waits for its reply, at most `timeoutMs`.
 * @throws {DPoPError} `ERR_TIMEOUT` when the worker does not answer; the worker's error
 *   otherwise (an {@link OAuthError} when the server refused).
 */
export function askWorker(
  worker: ServiceWorker,
  request: RefreshRequest,
  timeoutMs: number,
): Promise<RefreshReply & { ok: true }> {
  return new Promise((resolve, reject) => {
    const { port1, port2 } = new MessageChannel()
    const timer = setTimeout(() => {
      port1.close()
      reject(
        new DPoPError(
          'ERR_TIMEOUT',
          `The refresh worker did not answer in ${timeoutMs} ms: call serveRefreshes() (dpop-spa/sw) in the service worker, or leave "refreshWorker" out.`,
        ),
      )
    }, timeoutMs)
    port1.onmessage = (event: MessageEvent<RefreshReply>) => {
      clearTimeout(timer)
      port1.close()
      const reply = event.data
      if (reply.ok) return resolve(reply)
      reject(rebuild(reply))
    }
    worker.postMessage(request, [port2])
  })
}

const SERVER_CODES: ReadonlySet<string> = new Set<ServerResponseErrorCode>([
  'ERR_CORS_HEADER_HIDDEN',
  'ERR_INVALID_RESPONSE',
  'ERR_TOKEN_TYPE_MISMATCH',
  'ERR_REDIRECT',
])

/** The worker's error, rebuilt in the class its code belongs to (an Error crosses a MessagePort without its class). */
function rebuild(reply: RefreshReply & { ok: false }): DPoPError {
  const code = typeof reply.code === 'string' ? reply.code : 'ERR_NETWORK'
  const message =
    typeof reply.message === 'string' ? reply.message.slice(0, 1000) : 'The refresh worker failed.'
  if (code === 'ERR_OAUTH')
    return new OAuthError(
      typeof reply.error === 'string' ? reply.error : 'invalid_request',
      undefined,
      message,
    )
  if (code.startsWith('ERR_KEY_STORE_'))
    return new KeyStoreError(code as KeyStoreErrorCode, message)
  if (SERVER_CODES.has(code))
    return new ServerResponseError(code as ServerResponseErrorCode, message)
  return new DPoPError(code as DPoPError['code'], message)
}
