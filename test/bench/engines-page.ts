/**
 * The per-engine proof bench (bundled by run.ts, served cross-origin isolated from
 * http://localhost, loaded in every installed engine): dpop-spa's createProof against the
 * raw floor, one `crypto.subtle.sign` (ES256) over an input as long as a proof's signing
 * input, in paired ABBA blocks. Engines sign at very different speeds (WebKitGTK's libgcrypt
 * is far slower than Chromium's BoringSSL); the ratio to the floor is what the library owns.
 */
import { createProof, generateKeyPair } from '../../src/index.ts'
import { inflight, pairedBlocks, seq, type Op } from './measure.ts'

/** Inputs of {@link EngineBenchPage.setup}. */
export interface EngineBenchSetup {
  token: string
  nonce: string
  blocks: number
  seqOps: number
  inflightWaves: number
}

/** Per round, µs per proof: `seq`, `seq@base`, `c64`, `c64@base`. */
export type EngineRound = Record<'seq' | 'seq@base' | 'c64' | 'c64@base', number>

/** The page's interface to run.ts. */
export interface EngineBenchPage {
  setup(config: EngineBenchSetup): Promise<{
    crossOriginIsolated: boolean
    userAgent: string
    floorInputLength: number
    proof: string
    publicJwk: JsonWebKey
  }>
  round(index: number): Promise<EngineRound>
}

declare global {
  interface Window {
    __engineBench?: EngineBenchPage
  }
}

const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const
const HTU = 'https://api.example.com/resource'

let floor: Op | undefined
let ours: Op | undefined
let cfg: EngineBenchSetup | undefined

window.__engineBench = {
  async setup(config) {
    cfg = config
    const { token, nonce } = config
    const kp = await generateKeyPair()
    const proof = await createProof(kp, { htm: 'GET', htu: HTU, accessToken: token, nonce })
    const input = new Uint8Array(proof.lastIndexOf('.')).fill(0x41)
    floor = () => crypto.subtle.sign(SIGN, kp.privateKey, input)
    ours = () => createProof(kp, { htm: 'GET', htu: HTU, accessToken: token, nonce })
    for (let i = 0; i < 32; i++) {
      await floor()
      await ours()
    } // warm-up: JIT, caches
    return {
      crossOriginIsolated: globalThis.crossOriginIsolated,
      userAgent: navigator.userAgent,
      floorInputLength: input.length,
      proof,
      publicJwk: await crypto.subtle.exportKey('jwk', kp.publicKey),
    }
  },
  async round(index) {
    const c = cfg!
    const s = await pairedBlocks((op) => seq(op, c.seqOps), floor!, ours!, c.blocks, index)
    const w = await pairedBlocks(
      (op) => inflight(op, 64, c.inflightWaves),
      floor!,
      ours!,
      c.blocks,
      index,
    )
    return { seq: s.value, 'seq@base': s.base, c64: w.value, 'c64@base': w.base }
  },
}
