// @vitest-environment node
// No snippet in the documentation can rot: every ```ts and ```tsx block of README.md and of
// docs/*.md must stand verbatim in a file under examples/, which `npm run typecheck` compiles
// (tsconfig.json maps `dpop-spa`, `dpop-spa/react` and `dpop-spa/vue` to src/) and
// `npm run lint` lints.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const files = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  )
// docs/*.md only: docs/api/ is TypeDoc's output (`npm run docs`), not documentation we write.
const pages = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
]
const examples = files('examples')
  .filter((f) => /\.tsx?$/.test(f))
  .map((f) => ({ file: f, text: readFileSync(join(root, f), 'utf8') }))
const blocks = pages.flatMap((page) =>
  [...readFileSync(join(root, page), 'utf8').matchAll(/```(tsx?)\n([\s\S]*?)```/g)].map(
    (m, i) => [`${page} ${m[1]} block ${i + 1}`, m[2]!.trim()] as const,
  ),
)

describe('documentation examples', () => {
  it('README.md and docs/ have TypeScript and React examples, and examples/ has the apps', () => {
    expect(blocks.filter(([name]) => name.startsWith('README.md')).length).toBeGreaterThanOrEqual(1)
    expect(blocks.filter(([name]) => name.includes(' tsx ')).length).toBeGreaterThanOrEqual(1)
    expect(blocks.length).toBeGreaterThanOrEqual(8)
    expect(examples.map((e) => e.file)).toEqual(
      expect.arrayContaining(['examples/vanilla/main.ts', 'examples/react-vite/src/main.tsx']),
    )
  })
  it.each(blocks)('%s stands verbatim in a file under examples/', (_name, block) => {
    expect(
      examples.some((e) => e.text.includes(block)),
      `no file under examples/ contains:\n${block}`,
    ).toBe(true)
  })
})
