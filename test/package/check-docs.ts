/**
 * Every exported function and class of each entry point documents, in its TSDoc, what the
 * issue asks of the API reference: each argument (`@param`), what it returns (`@returns`,
 * unless it returns nothing), what it throws (`@throws`, or "Never throws"/"never rejects"
 * in the summary) and an `@example`. TypeDoc (`treatWarningsAsErrors`, `notDocumented`)
 * already fails on anything undocumented; this adds the tags. Reads the JSON that
 * `npm run docs` writes beside the HTML (docs/api.json).
 */
import { readFileSync } from 'node:fs'

interface Part {
  kind: string
  text: string
}
interface Tag {
  tag: string
  content: Part[]
}
interface Comment {
  summary: Part[]
  blockTags?: Tag[]
}
interface Param {
  name: string
  comment?: Comment
}
interface Signature {
  name: string
  comment?: Comment
  parameters?: Param[]
  type?: { type: string; name?: string; typeArguments?: { type: string; name?: string }[] }
}
interface Reflection {
  name: string
  kind: number
  comment?: Comment
  signatures?: Signature[]
  children?: Reflection[]
}

const FUNCTION = 64
const CLASS = 128
const project = JSON.parse(readFileSync('docs/api.json', 'utf8')) as Reflection
const text = (parts: Part[] | undefined) => (parts ?? []).map((p) => p.text).join('')
const returnsNothing = (s: Signature) =>
  s.type?.name === 'void' ||
  (s.type?.name === 'Promise' && s.type.typeArguments?.[0]?.name === 'void')

const problems: string[] = []
let checked = 0
for (const module of project.children ?? []) {
  for (const item of module.children ?? []) {
    const where = `${module.name}: ${item.name}`
    if (item.kind === CLASS || item.kind === FUNCTION) checked++
    if (item.kind === CLASS) {
      const tags = item.comment?.blockTags?.map((t) => t.tag) ?? []
      if (!tags.includes('@example')) problems.push(`${where}: no @example`)
      continue
    }
    if (item.kind !== FUNCTION) continue
    for (const signature of item.signatures ?? []) {
      const tags = signature.comment?.blockTags ?? []
      const has = (tag: string) => tags.some((t) => t.tag === tag)
      if (!has('@example')) problems.push(`${where}: no @example`)
      if (!returnsNothing(signature) && !has('@returns')) problems.push(`${where}: no @returns`)
      if (!has('@throws') && !/never (throws|rejects)/i.test(text(signature.comment?.summary)))
        problems.push(`${where}: no @throws (or "Never throws")`)
      for (const p of signature.parameters ?? [])
        if (text(p.comment?.summary).trim() === '')
          problems.push(`${where}: parameter ${p.name} undocumented`)
    }
  }
}
if (problems.length > 0) {
  for (const p of problems) console.error(`docs check: ${p}`)
  process.exit(1)
}
if (checked < 20) {
  console.error(
    `docs check: only ${checked} functions and classes found in docs/api.json; is the JSON output complete?`,
  )
  process.exit(1)
}
console.log(
  `docs check: ${checked} exported functions and classes, each with its arguments, return, throws and an example documented`,
)
