// The React provider under StrictMode (happy-dom, react-dom): React runs state initializers
// and effects twice there, and the provider must still make one client per config.
import { afterEach, describe, expect, it } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import { StrictMode, act, createElement } from 'react'
import { createRoot } from 'react-dom/client'
import { DPoPProvider, useDPoP } from '../src/react.ts'
import type { DPoPClientConfig } from '../src/client/client-config.ts'

const ISSUER = 'https://as.example'
const metadata = {
  issuer: ISSUER,
  authorization_endpoint: `${ISSUER}/authorize`,
  token_endpoint: `${ISSUER}/token`,
}

;(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true
const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

describe('DPoPProvider under StrictMode', () => {
  it('guard: one client (one discovery) per config, though React runs the initializer and effects twice', async () => {
    const discoveries: string[] = []
    const config: DPoPClientConfig = {
      issuer: ISSUER,
      clientId: 'spa',
      redirectUri: 'https://app.example/cb',
      apiOrigins: ['https://api.example'],
      indexedDB: new IDBFactory(),
      name: 'strict',
      fetch: async (input) => {
        discoveries.push(String(input instanceof Request ? input.url : input))
        return Response.json(metadata)
      },
    }
    const seen: string[] = []
    function Status() {
      const { status } = useDPoP()
      seen.push(status)
      return null
    }
    const host = document.createElement('div')
    const root = createRoot(host)
    cleanups.push(() => {
      act(() => root.unmount())
    })
    await act(async () => {
      root.render(
        createElement(
          StrictMode,
          null,
          createElement(DPoPProvider, { config, handleRedirect: false }, createElement(Status)),
        ),
      )
    })
    // Let the client start (key, discovery) inside act(), until the provider shows it ready.
    await expect
      .poll(async () => {
        await act(async () => {
          await new Promise((r) => setTimeout(r, 10))
        })
        return seen.at(-1)
      })
      .toBe('ready')
    expect(discoveries).toEqual([`${ISSUER}/.well-known/openid-configuration`])
  })
})
