// @vitest-environment node
// What an app's bundler keeps of dpop-spa: the size-limit entries of .size-limit.json,
// bundled with the same esbuild options. Importing the primitives (a) or the signed fetch
// (b) must not pull in oauth4webapi; the full client (c) must, which shows the check can fail.
import { describe, expect, it } from 'vitest'
import { bundleInputs, loadSizeChecks, type SizeCheck } from './size-checks.ts'

const checks = await loadSizeChecks()

function check(prefix: string): SizeCheck {
  const found = checks.find((c) => c.name.startsWith(prefix))
  if (!found) throw new Error(`.size-limit.json has no check named "${prefix} …"`)
  return found
}

const packagesIn = (inputs: readonly string[]) =>
  [
    ...new Set(inputs.flatMap((i) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(i)?.[1] ?? [])),
  ].sort()

// oauth4webapi's error codes are string literals a minifier keeps: code, not just a file name.
const OAUTH4WEBAPI_CODE = /OAUTH_[A-Z_]{6,}/

describe('bundles of the size-limit entries', () => {
  it('(a) primitives: only our own modules, no oauth4webapi and no idb-keyval', async () => {
    const { inputs, code } = await bundleInputs(check('(a)').import)
    expect(packagesIn(inputs)).toEqual([])
    expect(inputs.some((i) => i.endsWith('src/proof/proof.ts'))).toBe(true)
    expect(code).not.toMatch(OAUTH4WEBAPI_CODE)
  })

  it('(b) primitives + key store + signed fetch: idb-keyval, but no oauth4webapi', async () => {
    const { inputs, code } = await bundleInputs(check('(b)').import)
    expect(packagesIn(inputs)).toEqual(['idb-keyval'])
    expect(inputs.some((i) => i.endsWith('src/fetch/dpop-fetch.ts'))).toBe(true)
    expect(code).not.toMatch(OAUTH4WEBAPI_CODE)
  })

  it('(c) the full client does bundle oauth4webapi (the checks above can fail)', async () => {
    const { inputs, code } = await bundleInputs(check('(c)').import)
    expect(packagesIn(inputs)).toEqual(['idb-keyval', 'oauth4webapi'])
    expect(code).toMatch(OAUTH4WEBAPI_CODE)
  })

  it('(c) the full client has nothing of React; (d) the React entry point has it (the check can fail)', async () => {
    const core = await bundleInputs(check('(c)').import)
    expect(
      core.inputs.some((i) => i.endsWith('src/react.ts') || i.includes('node_modules/react/')),
    ).toBe(false)
    const binding = await bundleInputs(check('(d)').import)
    expect(binding.inputs.some((i) => i.endsWith('src/react.ts'))).toBe(true)
    expect(packagesIn(binding.inputs)).toEqual(['idb-keyval', 'oauth4webapi', 'react'])
  })

  it('(e) the Vue entry point has Vue and nothing of React; the core has no Vue', async () => {
    const core = await bundleInputs(check('(c)').import)
    expect(
      core.inputs.some((i) => i.endsWith('src/vue.ts') || i.includes('node_modules/@vue/')),
    ).toBe(false)
    const binding = await bundleInputs(check('(e)').import)
    expect(binding.inputs.some((i) => i.endsWith('src/vue.ts'))).toBe(true)
    expect(packagesIn(binding.inputs).filter((p) => !p.startsWith('@vue/'))).toEqual([
      'idb-keyval',
      'oauth4webapi',
    ])
    expect(packagesIn(binding.inputs).some((p) => p.startsWith('@vue/'))).toBe(true)
  })
})
