// @vitest-environment node
// One rule for errors: each code is thrown by one class only, the class its code type names,
// and isDPoPError narrows by code (checked by the compiler in the last test).
import { readFileSync, readdirSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  DPoPError,
  KeyStoreError,
  OAuthError,
  ServerResponseError,
  isDPoPError,
  type DPoPErrorCode,
} from '../src/base/errors.ts'

const classOf: Record<DPoPErrorCode, string> = {
  ERR_INVALID_ARGUMENT: 'DPoPError',
  ERR_UNSUPPORTED_ALGORITHM: 'DPoPError',
  ERR_CRYPTO_UNAVAILABLE: 'DPoPError',
  ERR_PROOF_FAILED: 'DPoPError',
  ERR_BODY_NOT_REPLAYABLE: 'DPoPError',
  ERR_NETWORK: 'DPoPError',
  ERR_STATE_MISMATCH: 'DPoPError',
  ERR_LOGIN_REQUIRED: 'DPoPError',
  ERR_TIMEOUT: 'DPoPError',
  ERR_XHR_NOT_SIGNED: 'DPoPError',
  ERR_USER_REFUSED: 'DPoPError',
  ERR_KEY_STORE_UNAVAILABLE: 'KeyStoreError',
  ERR_KEY_STORE_UNSUPPORTED: 'KeyStoreError',
  ERR_KEY_STORE_QUOTA: 'KeyStoreError',
  ERR_KEY_STORE_FAILED: 'KeyStoreError',
  ERR_CORS_HEADER_HIDDEN: 'ServerResponseError',
  ERR_INVALID_RESPONSE: 'ServerResponseError',
  ERR_TOKEN_TYPE_MISMATCH: 'ServerResponseError',
  ERR_REDIRECT: 'ServerResponseError',
  ERR_OAUTH: 'OAuthError',
}

describe('error codes and classes', () => {
  it('every code thrown in src/ is thrown by the one class its type names', () => {
    const seen: string[] = []
    for (const file of (readdirSync('src', { recursive: true }) as string[]).filter((f) =>
      f.endsWith('.ts'),
    )) {
      const text = readFileSync(`src/${file}`, 'utf8')
      for (const m of text.matchAll(
        /new (DPoPError|KeyStoreError|ServerResponseError)\(\s*'(ERR_[A-Z_]+)'/g,
      )) {
        seen.push(`${m[2]}:${m[1]}`)
        expect(`${file}: ${m[2]} as ${m[1]}`).toBe(
          `${file}: ${m[2]} as ${classOf[m[2] as DPoPErrorCode]}`,
        )
      }
      if (/\binvalidArgument\(/.test(text)) seen.push('ERR_INVALID_ARGUMENT:DPoPError')
      if (/new OAuthError\(/.test(text)) seen.push('ERR_OAUTH:OAuthError')
      // Nobody builds ERR_INVALID_ARGUMENT by hand: one helper says it.
      if (file !== 'base/errors.ts')
        expect(text, file).not.toMatch(/new DPoPError\(\s*'ERR_INVALID_ARGUMENT'/)
    }
    // Not vacuous: the scan found the codes thrown across the source.
    expect(new Set(seen.map((s) => s.split(':')[0])).size).toBeGreaterThanOrEqual(15)
  })

  it('isDPoPError narrows by code, at run time and for the compiler', () => {
    const redirect: unknown = new ServerResponseError('ERR_REDIRECT', 'moved', { status: 302 })
    const quota: unknown = new KeyStoreError('ERR_KEY_STORE_QUOTA', 'full')
    const oauth: unknown = new OAuthError('invalid_grant', undefined, 'refused')
    expect(isDPoPError(redirect, 'ERR_CORS_HEADER_HIDDEN')).toBe(false)
    if (
      !isDPoPError(redirect, 'ERR_REDIRECT') ||
      !isDPoPError(quota, 'ERR_KEY_STORE_QUOTA') ||
      !isDPoPError(oauth, 'ERR_OAUTH')
    )
      throw new Error('not narrowed')
    // These lines compile only because the guard narrowed to the subclass.
    const status: number | undefined = redirect.status
    const kind: KeyStoreError = quota
    const grant: string = oauth.error
    expect([status, kind.code, grant]).toEqual([302, 'ERR_KEY_STORE_QUOTA', 'invalid_grant'])
    const any: unknown = new DPoPError('ERR_TIMEOUT', 'slow')
    if (isDPoPError(any)) {
      // A check on `code` narrows the class, as a switch would.
      if (any.code === 'ERR_REDIRECT') expect(any.status).toBeUndefined()
      else expect(any.code).toBe('ERR_TIMEOUT')
    }
  })
})
