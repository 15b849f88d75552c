// @vitest-environment node
// The tree is the architecture: src/ is grouped by part, and a part imports only from the parts
// below it (or from itself). An import that climbs is a design change; make it here on purpose.
import { readFileSync, readdirSync } from 'node:fs'
import { posix } from 'node:path'
import { describe, expect, it } from 'vitest'

/** The parts, bottom up; the entry points (src/*.ts) sit on top of all of them. */
const PARTS = [
  'base',
  'browser',
  'proof',
  'server-state',
  'key-store',
  'fetch',
  'session',
  'client',
  'bindings',
] as const
const rank = (file: string): number => {
  const part = file.includes('/') ? file.split('/')[0]! : 'entry'
  return part === 'entry' ? PARTS.length : PARTS.indexOf(part as (typeof PARTS)[number])
}

const files = (readdirSync('src', { recursive: true }) as string[])
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.split('\\').join('/'))

describe('layout', () => {
  it('every module sits in a known part or is an entry point', () => {
    for (const file of files) expect(rank(file), file).toBeGreaterThanOrEqual(0)
    expect(files.filter((f) => !f.includes('/')).sort()).toEqual([
      'index.ts',
      'react.ts',
      'sw.ts',
      'vue.ts',
    ])
  })

  it('no part imports from a part above it', () => {
    const climbs: string[] = []
    let imports = 0
    for (const file of files) {
      const text = readFileSync(`src/${file}`, 'utf8')
      for (const m of text.matchAll(/(?:from\s+|import\()'(\.{1,2}\/[^']+)'/g)) {
        imports++
        const target = posix.normalize(posix.join(posix.dirname(file), m[1]!))
        if (rank(target) > rank(file)) climbs.push(`${file} imports ${target}`)
      }
    }
    expect(imports).toBeGreaterThan(50) // not vacuous: the scan read the imports
    expect(climbs).toEqual([])
  })

  it('a climbing import is caught', () => {
    // The rank of a client module is above the fetch part's: importing it from fetch/ would climb.
    expect(rank('client/client.ts')).toBeGreaterThan(rank('fetch/dpop-fetch.ts'))
    expect(rank('index.ts')).toBeGreaterThan(rank('bindings/session-store.ts'))
  })
})
