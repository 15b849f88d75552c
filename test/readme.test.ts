// @vitest-environment node
// Every TypeScript example in the README compiles: each ```ts block must stand verbatim in
// test/readme-examples.ts, which `npm run typecheck` compiles.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const examples = readFileSync(new URL('./readme-examples.ts', import.meta.url), 'utf8')
const reactExamples = readFileSync(new URL('./readme-examples-react.tsx', import.meta.url), 'utf8')
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!.trim())
const tsxBlocks = [...readme.matchAll(/```tsx\n([\s\S]*?)```/g)].map((m) => m[1]!.trim())

describe('README examples', () => {
  it('has examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3)
  })
  it.each(blocks.map((b, i) => [i + 1, b] as const))('block %i is in test/readme-examples.ts', (_i, block) => {
    expect(examples).toContain(block)
  })
  it.each(tsxBlocks.map((b, i) => [i + 1, b] as const))('tsx block %i is in test/readme-examples-react.tsx', (_i, block) => {
    expect(reactExamples).toContain(block)
  })
  it('has the React example', () => {
    expect(tsxBlocks.length).toBeGreaterThanOrEqual(1)
  })
})
