/**
 * Which browser engines this machine can run, and how to drive each one. Read by
 * playwright.config.ts (one project per installed engine), by `npm run test:browser`
 * (e2e/run-engines.ts prints what it skips and why) and by the bench.
 *
 * - Chromium and Firefox ESR run under Playwright. Firefox ESR 153 needs Playwright
 *   1.60–1.64.x (WebDriver BiDi, channel 'moz-firefox'); 1.65 sends a BiDi command ESR
 *   does not know (`emulation.setMediaFeaturesOverride`), hence the exact pin in package.json.
 * - WebKitGTK runs through its own W3C WebDriver (WebKitWebDriver) and MiniBrowser, which
 *   has no headless mode: it needs a display, so it runs under xvfb-run.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { chromium as playwrightChromium } from 'playwright-core'

export type EngineName = 'chromium' | 'firefox' | 'webkit'

export interface EngineStatus {
  name: EngineName
  /** Path of the browser (or of its WebDriver), when found. */
  executable?: string
  /** Why the engine cannot run here, when it cannot. */
  missing?: string
}

const onPath = (command: string): string | undefined => {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, command)
    if (dir && existsSync(candidate)) return candidate
  }
  return undefined
}

/** MiniBrowser, the browser WebKitWebDriver starts (Debian: package webkit2gtk-driver pulls it in). */
export const MINIBROWSER_CANDIDATES = [
  '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser',
  '/usr/lib/aarch64-linux-gnu/webkit2gtk-4.1/MiniBrowser',
  '/usr/libexec/webkit2gtk-4.1/MiniBrowser',
]

/** Chromium: `CHROMIUM_PATH`, else Debian's /usr/bin/chromium (undefined: Playwright's own, if downloaded). */
export function chromiumPath(): string | undefined {
  const candidate = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
  return existsSync(candidate) ? candidate : undefined
}

const playwrightOwnChromium = (): boolean => {
  try {
    return existsSync(playwrightChromium.executablePath())
  } catch {
    return false
  }
}

/** Firefox: `FIREFOX_PATH`, else Debian's /usr/bin/firefox-esr. */
export function firefoxPath(): string | undefined {
  const candidate = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr'
  return existsSync(candidate) ? candidate : undefined
}

/** WebKitWebDriver: `WEBKIT_WEBDRIVER_PATH`, else on PATH. */
export function webkitDriverPath(): string | undefined {
  const candidate = process.env.WEBKIT_WEBDRIVER_PATH ?? onPath('WebKitWebDriver')
  return candidate && existsSync(candidate) ? candidate : undefined
}

/** The MiniBrowser binary WebKitWebDriver should start, when found. */
export function miniBrowserPath(): string | undefined {
  return [process.env.WEBKIT_MINIBROWSER_PATH, ...MINIBROWSER_CANDIDATES].find(
    (p): p is string => !!p && existsSync(p),
  )
}

/** Every engine, with what it lacks on this machine. */
export function detectEngines(): EngineStatus[] {
  const chromium = chromiumPath()
  const firefox = firefoxPath()
  const driver = webkitDriverPath()
  const mini = miniBrowserPath()
  const display = !!process.env.DISPLAY || !!onPath('xvfb-run')
  return [
    chromium
      ? { name: 'chromium', executable: chromium }
      : playwrightOwnChromium()
        ? { name: 'chromium', executable: playwrightChromium.executablePath() }
        : {
            name: 'chromium',
            missing: 'no /usr/bin/chromium (apt-get install chromium, or set CHROMIUM_PATH)',
          },
    firefox
      ? { name: 'firefox', executable: firefox }
      : {
          name: 'firefox',
          missing: 'no /usr/bin/firefox-esr (apt-get install firefox-esr, or set FIREFOX_PATH)',
        },
    !driver
      ? { name: 'webkit', missing: 'no WebKitWebDriver (apt-get install webkit2gtk-driver)' }
      : !mini
        ? {
            name: 'webkit',
            missing:
              'no MiniBrowser next to WebKitWebDriver (apt-get install webkit2gtk-driver, or set WEBKIT_MINIBROWSER_PATH)',
          }
        : !display
          ? { name: 'webkit', missing: 'no display and no xvfb-run (apt-get install xvfb xauth)' }
          : { name: 'webkit', executable: driver },
  ]
}

/**
 * The engines to run: the installed ones, narrowed by `DPOP_TEST_ENGINES`
 * (comma-separated, e.g. `firefox` or `chromium,webkit`) when set.
 */
export function selectedEngines(): EngineName[] {
  const wanted = process.env.DPOP_TEST_ENGINES?.split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  return detectEngines()
    .filter((e) => !e.missing && (!wanted || wanted.includes(e.name)))
    .map((e) => e.name)
}

/** The installed engine's version, as its package or binary reports it (e.g. `Firefox 153.8.0esr`, `WebKitGTK 2.50.6`). */
export function engineVersion(name: EngineName): string | undefined {
  try {
    if (name === 'webkit') {
      const v = execFileSync('dpkg-query', ['-W', '-f=${Version}', 'libwebkit2gtk-4.1-0'], {
        encoding: 'utf8',
        timeout: 5_000,
      }).trim()
      return v ? `WebKitGTK ${v.replace(/-.*$/, '')}` : undefined
    }
    const binary = name === 'chromium' ? chromiumPath() : firefoxPath()
    if (!binary) return undefined
    return execFileSync(binary, ['--version'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .replace(/^Mozilla /, '')
      .replace(/ built on.*$/, '')
  } catch {
    return undefined
  }
}
