/**
 * One browser suite, three engines. Specs talk to the browser through `driver` (a {@link Driver}):
 * tabs that can go to a URL, reload, evaluate a function, wait for page state and close.
 * Chromium and Firefox are driven by Playwright; WebKitGTK by W3C WebDriver (WebKitWebDriver +
 * MiniBrowser under Xvfb, through selenium-webdriver). Only what every engine's driver can do is
 * offered: no request interception, no init scripts, no console capture. Pages simulate broken
 * storage themselves (e2e/fixtures/simulate.js) and servers record what arrived.
 *
 * Every WebDriver step is bounded: WebKitGTK hangs (rather than failing) on some bad input,
 * for example a browser argument MiniBrowser does not know.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { test as base, expect } from '@playwright/test'
import type { Browser, BrowserContext, Page } from '@playwright/test'
import { chromium as playwrightChromium, firefox as playwrightFirefox } from 'playwright-core'
import { Builder, type WebDriver } from 'selenium-webdriver'
import { miniBrowserPath, webkitDriverPath, type EngineName } from './engines.ts'

export { expect }

/** Options a project sets (playwright.config.ts). */
export interface DriverOptions {
  /** How this project's engine is driven. */
  driverKind: 'playwright' | 'webdriver'
  /** First port for WebKitWebDriver; worker N uses this + N. */
  webdriverPort: number
}

/** A tab of the browser under test. Functions passed to `evaluate` and `waitFor` run in the page and must be self-contained. */
export interface Tab {
  /** Navigates (a path resolves against the test's baseURL) and waits for the load event. */
  goto(url: string): Promise<void>
  /** Reloads and waits for the load event. */
  reload(): Promise<void>
  /** The tab's current URL. */
  url(): Promise<string>
  /** Runs `fn(arg)` in the page and returns its (JSON-shaped) result; promises are awaited. */
  evaluate<R>(fn: () => R | Promise<R>): Promise<R>
  evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>
  /** Waits until `fn(arg)` returns something truthy in the page; survives navigations. */
  waitFor<A>(fn: (arg: A) => unknown, arg?: A, timeoutMs?: number): Promise<void>
  /** Waits until the tab's URL matches. */
  waitForUrl(test: (url: URL) => boolean, timeoutMs?: number): Promise<void>
  /** Saves a PNG of the page (full page where the driver can, else the viewport). */
  screenshot(path: string): Promise<void>
  /** Closes the tab. */
  close(): Promise<void>
}

/** The browser of one test: fresh storage, one tab open, more on demand (same storage). */
export interface Driver {
  readonly engine: EngineName
  /** The first tab. */
  readonly page: Tab
  /** Opens another tab in the same browser profile (shares IndexedDB, BroadcastChannel, locks). */
  newTab(): Promise<Tab>
  /**
   * The first tab's Playwright page, where the engine is driven by Playwright (Chromium,
   * Firefox); undefined under WebDriver. Only for checks that need request interception or
   * an init script; a test that uses it says so and still runs its other steps everywhere.
   */
  readonly playwright?: Page
}

const DEFAULT_WAIT = 20_000

async function poll<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await probe()
      if (done(value)) return
      last = value
    } catch (e) {
      // A navigation in progress destroys the page's context: look again.
      last = e instanceof Error ? e.message : e
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last: ${String(last).slice(0, 300)}`,
      )
    await new Promise((r) => setTimeout(r, 50))
  }
}

// ---------------------------------------------------------------- Playwright (Chromium, Firefox)

function playwrightTab(page: Page): Tab {
  const tab: Tab = {
    goto: async (url) => {
      await page.goto(url)
    },
    reload: async () => {
      await page.reload()
    },
    url: async () => page.url(),
    evaluate: <R, A>(fn: (arg: A) => R | Promise<R>, arg?: A) =>
      page.evaluate(fn as (arg: unknown) => R, arg),
    waitFor: (fn, arg, timeoutMs = DEFAULT_WAIT) =>
      poll(
        () => page.evaluate(fn as (a: unknown) => unknown, arg as unknown),
        Boolean,
        timeoutMs,
        `${fn.toString().slice(0, 80)}`,
      ),
    waitForUrl: (test, timeoutMs = DEFAULT_WAIT) =>
      poll(
        async () => page.url(),
        (u) => test(new URL(u)),
        timeoutMs,
        'a URL',
      ),
    screenshot: async (path) => {
      await page.screenshot({ path, fullPage: true })
    },
    close: () => page.close(),
  }
  return tab
}

function playwrightDriver(engine: EngineName, context: BrowserContext, first: Page): Driver {
  return {
    engine,
    page: playwrightTab(first),
    newTab: async () => playwrightTab(await context.newPage()),
    playwright: first,
  }
}

// ---------------------------------------------------------------- WebDriver (WebKitGTK)

/** How long one WebDriver command may take before the step fails. */
const STEP_MS = 30_000

function bounded<T>(promise: Promise<T>, what: string, ms = STEP_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`WebDriver: ${what} did not answer within ${ms} ms`)),
        ms,
      )
    }),
  ]).finally(() => clearTimeout(timer))
}

/** A WebKitWebDriver server under xvfb-run, in its own process group so it can be stopped whole. */
export interface WebDriverServer {
  readonly url: string
  stop(): Promise<void>
  /** Stops WebKitWebDriver (and the MiniBrowser it started) and starts it again on the same port. */
  restart(): Promise<void>
}

async function startWebDriverServer(port: number): Promise<WebDriverServer> {
  const driverPath = webkitDriverPath()
  if (!driverPath) throw new Error('WebKitWebDriver not found')
  const command =
    process.env.DISPLAY && !process.env.DPOP_TEST_FORCE_XVFB
      ? [driverPath, `--port=${port}`]
      : ['xvfb-run', '-a', driverPath, `--port=${port}`]
  const url = `http://127.0.0.1:${port}`
  let child: ChildProcess | undefined
  let stderr = ''
  const stop = async () => {
    const running = child
    if (!running || running.exitCode !== null || running.pid === undefined) return
    const exited = new Promise<void>((r) => running.once('exit', () => r()))
    try {
      process.kill(-running.pid, 'SIGTERM')
    } catch {
      /* already gone */
    }
    await bounded(exited, 'stopping WebKitWebDriver', 5_000).catch(() => {
      try {
        process.kill(-running.pid!, 'SIGKILL')
      } catch {
        /* already gone */
      }
    })
  }
  const launch = async () => {
    stderr = ''
    const started = spawn(command[0]!, command.slice(1), {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    child = started
    started.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000)
    })
    try {
      await poll(
        async () => {
          if (started.exitCode !== null)
            throw Object.assign(
              new Error(`WebKitWebDriver exited (${started.exitCode}): ${stderr}`),
              { fatal: true },
            )
          const r = await fetch(`${url}/status`, { signal: AbortSignal.timeout(2_000) })
          return ((await r.json()) as { value?: { ready?: boolean } }).value?.ready === true
        },
        Boolean,
        20_000,
        `WebKitWebDriver on port ${port}`,
      )
    } catch (e) {
      await stop()
      throw new Error(`${e instanceof Error ? e.message : String(e)} ${stderr}`)
    }
  }
  await launch()
  const restart = async () => {
    await stop()
    await launch()
  }
  return { url, stop, restart }
}

// A function shipped to the page as source: the last argument is WebDriver's callback. The
// result travels as JSON text, so that it arrives as Playwright would give it (WebDriver's own
// serialization turns undefined members into null).
const ASYNC_WRAPPER = `
const done = arguments[arguments.length - 1];
const arg = arguments[0];
Promise.resolve().then(() => (%FN%)(arg)).then(
  (value) => done({ ok: true, json: value === undefined ? null : JSON.stringify(value) }),
  (e) => done({ ok: false, error: String((e && (e.stack || e.message)) || e) }));`

function webDriverDriver(session: WebDriver, baseURL: string, firstHandle: string): Driver {
  // One WebDriver session has one "current window": commands for different tabs are
  // serialized and each switches to its own window first.
  let tail: Promise<unknown> = Promise.resolve()
  let current = firstHandle
  const serial = <T>(handle: string, what: string, f: () => Promise<T>): Promise<T> => {
    const run = tail.then(async () => {
      if (current !== handle) {
        await bounded(session.switchTo().window(handle), `switching to a tab (${what})`)
        current = handle
      }
      return bounded(f(), what)
    })
    tail = run.catch(() => undefined)
    return run
  }
  const makeTab = (handle: string): Tab => {
    const evaluate = async <R, A>(fn: (arg: A) => R | Promise<R>, arg?: A): Promise<R> => {
      const script = ASYNC_WRAPPER.replace('%FN%', fn.toString())
      const result = await serial(handle, `evaluate ${fn.toString().slice(0, 60)}`, () =>
        session.executeAsyncScript<{ ok: boolean; json?: string | null; error?: string } | null>(
          script,
          arg === undefined ? null : arg,
        ),
      )
      if (!result || typeof result !== 'object')
        throw new Error(`WebDriver: the page returned ${String(result)} (navigated away?)`)
      if (!result.ok) throw new Error(`page error: ${result.error}`)
      return (typeof result.json === 'string' ? JSON.parse(result.json) : undefined) as R
    }
    const tab: Tab = {
      goto: (url) => serial(handle, `goto ${url}`, () => session.get(new URL(url, baseURL).href)),
      reload: () => serial(handle, 'reload', () => session.navigate().refresh()),
      url: () => serial(handle, 'url', () => session.getCurrentUrl()),
      evaluate: evaluate,
      waitFor: (fn, arg, timeoutMs = DEFAULT_WAIT) =>
        poll(
          () => evaluate(fn as (a: unknown) => unknown, arg as unknown),
          Boolean,
          timeoutMs,
          fn.toString().slice(0, 80),
        ),
      waitForUrl: (test, timeoutMs = DEFAULT_WAIT) =>
        poll(
          () => tab.url(),
          (u) => test(new URL(u)),
          timeoutMs,
          'a URL',
        ),
      screenshot: (path) =>
        serial(handle, 'screenshot', async () => {
          await mkdir(dirname(path), { recursive: true })
          await writeFile(path, Buffer.from(await session.takeScreenshot(), 'base64'))
        }),
      close: () =>
        serial(handle, 'close', async () => {
          await session.close()
          const rest = await session.getAllWindowHandles()
          if (rest[0]) {
            await session.switchTo().window(rest[0])
            current = rest[0]
          }
        }),
    }
    return tab
  }
  return {
    engine: 'webkit',
    page: makeTab(firstHandle),
    newTab: async () => {
      const handle = await serial(current, 'new tab', async () => {
        await session.switchTo().newWindow('tab')
        return session.getWindowHandle()
      })
      current = handle
      return makeTab(handle)
    },
  }
}

/** How long a new WebKit session may take before WebKitWebDriver is started again (it takes 1–2 s). */
const NEW_SESSION_MS = 20_000

/**
 * A new WebKit session. On a loaded machine MiniBrowser now and then never answers a new session
 * (seen once in about 300 WebKit tests); then WebKitWebDriver is started again and the session
 * asked for once more, and `onRetry` is told (the test runner extends the test's time by it).
 */
async function openWebDriverSession(
  server: WebDriverServer,
  onRetry?: (extraMs: number) => void,
): Promise<WebDriver> {
  try {
    return await newWebDriverSession(server, NEW_SESSION_MS)
  } catch (e) {
    if (!(e instanceof Error && e.message.includes('new WebKit session did not answer'))) throw e
    onRetry?.(NEW_SESSION_MS + STEP_MS + 10_000)
    await server.restart()
    return await newWebDriverSession(server, STEP_MS)
  }
}

async function newWebDriverSession(server: WebDriverServer, ms: number): Promise<WebDriver> {
  const binary = miniBrowserPath()
  if (!binary) throw new Error('MiniBrowser not found')
  const session = await bounded(
    new Builder()
      .usingServer(server.url)
      .withCapabilities({
        browserName: 'MiniBrowser',
        // Only arguments MiniBrowser knows: an unknown one makes it exit and this request hang.
        'webkitgtk:browserOptions': { binary, args: ['--automation'] },
      })
      .build(),
    'new WebKit session',
    ms,
  )
  await bounded(
    session.manage().setTimeouts({ script: STEP_MS - 2_000, pageLoad: STEP_MS - 2_000 }),
    'setting timeouts',
  )
  return session
}

// ---------------------------------------------------------------- outside the test runner (the bench)

/** Options of {@link launchDriver}. */
export interface LaunchOptions {
  /** Where relative `goto` paths resolve. */
  baseURL: string
  /** Playwright launch options of the engine's project (Chromium, Firefox). */
  launchOptions?: Parameters<typeof playwrightChromium.launch>[0]
  /** Firefox: `moz-firefox`. */
  channel?: string
  /** WebKit: the port for WebKitWebDriver. */
  webdriverPort?: number
}

/** Starts one engine outside the test runner and opens one tab; `close()` stops everything. */
export async function launchDriver(
  engine: EngineName,
  options: LaunchOptions,
): Promise<{ driver: Driver; close(): Promise<void> }> {
  if (engine === 'webkit') {
    const server = await startWebDriverServer(options.webdriverPort ?? 5754)
    try {
      const session = await openWebDriverSession(server)
      const handle = await bounded(session.getWindowHandle(), 'window handle')
      return {
        driver: webDriverDriver(session, options.baseURL, handle),
        close: async () => {
          await bounded(session.quit(), 'closing the WebKit session', 10_000).catch(() => undefined)
          await server.stop()
        },
      }
    } catch (e) {
      await server.stop()
      throw e
    }
  }
  const type = engine === 'firefox' ? playwrightFirefox : playwrightChromium
  const browser = await type.launch({
    headless: true,
    ...options.launchOptions,
    ...(options.channel ? { channel: options.channel } : {}),
  })
  const context = await browser.newContext({ baseURL: options.baseURL })
  const page = await context.newPage()
  return { driver: playwrightDriver(engine, context, page), close: () => browser.close() }
}

// ---------------------------------------------------------------- fixtures

interface WorkerFixtures {
  driverKind: DriverOptions['driverKind']
  webdriverPort: number
  engineBrowser: Browser | WebDriverServer
}

/** `test` with a `driver` fixture: the browser of this project's engine. */
export const test = base.extend<{ driver: Driver }, WorkerFixtures>({
  driverKind: ['playwright', { scope: 'worker', option: true }],
  webdriverPort: [5744, { scope: 'worker', option: true }],
  engineBrowser: [
    async (
      { driverKind, webdriverPort, playwright, browserName, launchOptions, channel, headless },
      use,
      workerInfo,
    ) => {
      if (driverKind === 'webdriver') {
        const server = await startWebDriverServer(webdriverPort + workerInfo.parallelIndex)
        await use(server)
        await server.stop()
      } else {
        const browser = await playwright[browserName].launch({
          ...launchOptions,
          ...(channel ? { channel } : {}),
          headless,
        })
        await use(browser)
        await browser.close()
      }
    },
    { scope: 'worker', timeout: 60_000 },
  ],
  driver: async ({ engineBrowser, baseURL }, use, testInfo) => {
    const engine = testInfo.project.name as EngineName
    if ('newContext' in engineBrowser) {
      const context = await engineBrowser.newContext(baseURL ? { baseURL } : {})
      const page = await context.newPage()
      await use(playwrightDriver(engine, context, page))
      await context.close()
    } else {
      // A new session per test: WebKitGTK keeps storage for one session, so every test starts clean.
      const session = await openWebDriverSession(engineBrowser, (extraMs) =>
        testInfo.setTimeout(testInfo.timeout + extraMs),
      )
      const handle = await bounded(session.getWindowHandle(), 'window handle')
      await use(webDriverDriver(session, baseURL ?? 'http://localhost/', handle))
      await bounded(session.quit(), 'closing the WebKit session', 10_000).catch(() => undefined)
    }
  },
})
