/**
 * The live log of the demo page: one list item per request, response, nonce challenge,
 * retry, refresh and sign-in event. Everything is written with `textContent`, so no
 * server-provided text is ever parsed as HTML.
 */

/** What kind of line this is; also the `data-kind` attribute tests select on. */
export type LogKind =
  | 'request' // a signed request leaves, with its proof
  | 'response'
  | 'nonce' // a DPoP-Nonce was learned
  | 'retry'
  | 'clock'
  | 'as' // a request to the authorization server and its answer
  | 'login'
  | 'refresh'
  | 'logout'
  | 'error'
  | 'thief' // the stolen-token replay
  | 'info'

/** One log line. */
export interface LogEntry {
  kind: LogKind
  /** One line, e.g. `GET http://localhost:5301/api/me → 200`. */
  text: string
  /** HTTP status, when the line is about a response; becomes `data-status`. */
  status?: number | undefined
  /** Decoded, shortened details (proof header and claims, error body); never a token. */
  details?: Readonly<Record<string, unknown>> | undefined
}

/** The log on the page. */
export interface LogView {
  add(entry: LogEntry): void
  clear(): void
}

const MAX_ENTRIES = 300

const LABELS: Readonly<Record<LogKind, string>> = {
  request: 'request',
  response: 'response',
  nonce: 'nonce',
  retry: 'retry',
  clock: 'clock',
  as: 'auth server',
  login: 'login',
  refresh: 'refresh',
  logout: 'logout',
  error: 'error',
  thief: 'stolen token',
  info: 'info',
}

/** Creates the log view inside `list` (an `<ol>`), newest entry first. */
export function createLogView(list: HTMLOListElement): LogView {
  return {
    add(entry) {
      const item = document.createElement('li')
      item.className = `entry kind-${entry.kind}`
      item.dataset.kind = entry.kind
      if (entry.status !== undefined) {
        item.dataset.status = String(entry.status)
        item.classList.add(entry.status < 400 ? 'ok' : 'failed')
      }
      const time = document.createElement('time')
      const now = new Date()
      time.dateTime = now.toISOString()
      time.textContent = now.toLocaleTimeString([], { hour12: false })
      const badge = document.createElement('span')
      badge.className = 'badge'
      badge.textContent = LABELS[entry.kind]
      const text = document.createElement('span')
      text.className = 'text'
      text.textContent = entry.text
      item.append(time, badge, text)
      if (entry.details && Object.keys(entry.details).length > 0) {
        const details = document.createElement('details')
        const summary = document.createElement('summary')
        summary.textContent = Object.keys(entry.details).join(', ')
        const pre = document.createElement('pre')
        pre.textContent = JSON.stringify(entry.details, null, 2)
        details.append(summary, pre)
        item.append(details)
      }
      list.prepend(item)
      while (list.childElementCount > MAX_ENTRIES) list.lastElementChild?.remove()
    },
    clear() {
      list.replaceChildren()
    },
  }
}
