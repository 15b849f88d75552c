/**
 * What the launcher (demo/run.ts) tells the SPA: the origins it started, so that no port
 * is hard-coded in the page.
 */

/** The SPA's configuration, chosen by demo/run.ts. */
export interface DemoConfig {
  /** The authorization server's issuer identifier. */
  issuer: string
  /** The public client registered at the authorization server. */
  clientId: string
  /** The API's origin: the only origin that gets tokens and proofs, and the resource indicator. */
  apiOrigin: string
  /** Where the authorization server sends the browser back: the SPA's own page. */
  redirectUri: string
  /** Access token lifetime the authorization server was started with, seconds. */
  accessTokenTtl: number
}

// Replaced by Vite's `define` with the launcher's JSON (see demo/run.ts).
declare const __DPOP_DEMO_CONFIG__: DemoConfig | undefined

/**
 * The configuration the launcher put into the page.
 * @throws {Error} when the page was not served by demo/run.ts.
 */
export function demoConfig(): DemoConfig {
  if (typeof __DPOP_DEMO_CONFIG__ === 'undefined') {
    throw new Error(
      'No demo configuration: start the demo with `npm run demo`, which serves this page.',
    )
  }
  return __DPOP_DEMO_CONFIG__
}
