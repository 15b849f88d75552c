/**
 * The benchmark page (bundled by run.ts with esbuild, served from http://localhost).
 * Every case of every round runs here, in one page, interleaved: run.ts calls
 * `__bench.round(r)` once per round and this file rotates the case order by `r`, so
 * slow drift (thermal, GC, JIT) lands on every case alike and ratios are paired per round.
 */
import {
  customFetch,
  DPoP,
  protectedResourceRequest,
  type CustomFetchOptions,
  type DPoPHandle,
} from 'oauth4webapi'
import { generateProof } from 'dpop'
import { createDPoPFetch, createProof, generateKeyPair } from '../../src/index.ts'
import { inflight, pairedBlocks, seq, type Op } from './measure.ts'

/** Inputs shared by every implementation, so all sign the same claims. */
export interface BenchSetup {
  /** A 1 KB access token (JWT-shaped, base64url). */
  token: string
  /** A 43-character nonce (32 random bytes, base64url), as servers commonly mint. */
  nonce: string
  /** The nonce the network API sends; the signed fetch learns it from `DPoP-Nonce`. */
  apiNonce: string
  /**
   * Blocks per case and round, in the pattern ABBA ABBA … (A: the floor or the bearer
   * baseline, B: the case; reversed on odd rounds). A multiple of 4.
   */
  blocks: number
  /** Sequential operations per block. */
  seqOps: number
  /** Waves of 64 proofs in flight per block. */
  inflightWaves: number
  /** One-proof samples after an idle gap, per case and round (each paired with a floor sample). */
  idleSamples: number
  /** The idle gap before each of those samples, ms. */
  idleGapMs: number
  /** Operations per block in the JS-only cases (crypto.subtle.sign replaced by a resolved stub). */
  jsOps: number
  /** Requests per block in the sequential network case. */
  netSeqOps: number
  /** Waves of 32 concurrent requests per block in the concurrent network case. */
  netConcurrentWaves: number
}

/**
 * Per round: microseconds per operation by case id (network: per request), and for each
 * case `<id>@base`: its floor (or bearer baseline) measured in the blocks beside it.
 */
export type RoundResult = Record<string, number>

/** WebCrypto calls per proof, counted by wrapping SubtleCrypto.prototype (not timed). */
export interface CallCounts {
  /** Calls per proof once the implementation is warm and the token was seen before. */
  warm: Record<string, number>
  /** Calls for one proof with a token never seen before. */
  newToken: Record<string, number>
}

/** One proof of each implementation, for verification with jose in Node. */
export interface ProofSample {
  impl: string
  proof: string
  htm: string
  htu: string
  /** Length of `header.payload`, the bytes each implementation signs. */
  signingInputLength: number
}

/** The page's interface to run.ts. */
export interface BenchPage {
  setup(config: BenchSetup): Promise<{
    caseIds: string[]
    floorInputLength: number
    crossOriginIsolated: boolean
    userAgent: string
    publicJwk: JsonWebKey
  }>
  round(index: number): Promise<RoundResult>
  countCalls(): Promise<CallCounts>
  samples(): Promise<ProofSample[]>
}

declare global {
  interface Window {
    __bench?: BenchPage
  }
}

const STUB_URL = 'https://api.example.com/resource'
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const

interface Impl {
  /** Short id used in case ids: floor, ours, ours-notoken, dpop, o4w, fetch. */
  readonly id: string
  readonly op: Op
}

function ascii(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const bytes = crypto.getRandomValues(new Uint8Array(length))
  let s = ''
  for (const b of bytes) s += alphabet[b & 63]
  return s
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

// A timer, not a wait for state: the idle gap is the condition being measured.
const idle = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Runs `f` with `crypto.subtle.sign` answering at once with a fixed signature, so what is
 * timed is the library's own JavaScript (and any other WebCrypto calls it makes).
 */
async function withStubbedSign<T>(f: () => Promise<T>): Promise<T> {
  const proto = SubtleCrypto.prototype
  const original = Object.getOwnPropertyDescriptor(proto, 'sign')!
  const signature = new Uint8Array(64)
  Object.defineProperty(proto, 'sign', {
    ...original,
    value: () => Promise.resolve(signature.slice().buffer),
  })
  try {
    return await f()
  } finally {
    Object.defineProperty(proto, 'sign', original)
  }
}

/** One operation after an idle gap, alternating with one floor operation after the same gap. */
async function pairedAfterIdle(base: Op, op: Op, samples: number, gapMs: number, round: number) {
  const xs: number[] = []
  const bs: number[] = []
  const one = async (f: Op, into: number[]) => {
    await idle(gapMs)
    const t0 = performance.now()
    await f()
    into.push((performance.now() - t0) * 1000)
  }
  for (let i = 0; i < samples; i++) {
    if ((i + round) % 2) {
      await one(op, xs)
      await one(base, bs)
    } else {
      await one(base, bs)
      await one(op, xs)
    }
  }
  return { value: median(xs), base: median(bs) }
}

function createBenchPage(): BenchPage {
  let cfg: BenchSetup | undefined
  let impls: Impl[] = []
  const cases: { id: string; run: (round: number) => Promise<RoundResult> }[] = []
  let keyPair: CryptoKeyPair | undefined
  let o4w: DPoPHandle | undefined
  const captured = new Map<string, string>()

  // One response object for every stubbed call (its body is null, so it can be handed out
  // again): the stubs measure the wrappers, not Response construction.
  let response: Response | undefined

  const o4wRequest = (token: string, capture?: string) => {
    const stub = async (
      _url: string,
      init: CustomFetchOptions<string, unknown>,
    ): Promise<Response> => {
      if (capture) captured.set(capture, new Headers(init.headers).get('dpop') ?? '')
      return response!
    }
    return protectedResourceRequest(token, 'GET', new URL(STUB_URL), new Headers(), null, {
      DPoP: o4w!,
      [customFetch]: stub,
    })
  }

  const makeOursFetch = (getToken: () => string, capture?: string) =>
    createDPoPFetch({
      keys: keyPair!,
      origins: [new URL(STUB_URL).origin],
      getAccessToken: () => getToken(),
      fetch: async (input, init) => {
        if (capture) {
          const request = new Request(input, init)
          captured.set(capture, request.headers.get('dpop') ?? '')
        }
        return response!
      },
    })

  return {
    async setup(config) {
      cfg = config
      const { token, nonce } = config
      response = new Response(null, { status: 200, headers: { 'DPoP-Nonce': nonce } })
      keyPair = await generateKeyPair()
      const kp = keyPair
      o4w = DPoP({}, kp)
      // One warm-up request teaches the handle the nonce from the stub's DPoP-Nonce header.
      await o4wRequest(token)

      const sample = await createProof(kp, { htm: 'GET', htu: STUB_URL, accessToken: token, nonce })
      const floorInput = new TextEncoder().encode(ascii(sample.lastIndexOf('.')))

      const oursFetch = makeOursFetch(() => token)
      await oursFetch(STUB_URL) // learns the nonce from the stub's DPoP-Nonce

      impls = [
        { id: 'floor', op: () => crypto.subtle.sign(SIGN, kp.privateKey, floorInput) },
        {
          id: 'ours',
          op: () => createProof(kp, { htm: 'GET', htu: STUB_URL, accessToken: token, nonce }),
        },
        { id: 'ours-notoken', op: () => createProof(kp, { htm: 'GET', htu: STUB_URL, nonce }) },
        { id: 'dpop', op: () => generateProof(kp, STUB_URL, 'GET', nonce, token) },
        { id: 'o4w', op: () => o4wRequest(token) },
        { id: 'fetch', op: () => oursFetch(STUB_URL) },
      ]

      const origin = location.origin
      const netFetch = createDPoPFetch({ keys: kp, origins: [origin], getAccessToken: () => token })
      const apiUrl = `${origin}/api/resource`
      const bearer = () =>
        fetch(apiUrl, { headers: { Authorization: `Bearer ${token}` } }).then((r) =>
          r.arrayBuffer(),
        )
      const signed = () => netFetch(apiUrl).then((r) => r.arrayBuffer())
      // The least any DPoP client does per request: one sign, then fetch with both headers
      // (a proof made once and replayed; the API does not check it): no library code.
      const rawProof = sample
      const rawUrl = `${origin}/api/raw`
      const rawSigned = async () => {
        await crypto.subtle.sign(SIGN, kp.privateKey, floorInput)
        const r = await fetch(rawUrl, {
          headers: { Authorization: `DPoP ${token}`, DPoP: rawProof },
        })
        return r.arrayBuffer()
      }
      await signed() // learns the API's nonce
      await bearer()
      await rawSigned()

      cases.length = 0
      const floor = impls[0]!.op
      const add = (id: string, run: (round: number) => Promise<{ value: number; base: number }>) =>
        cases.push({
          id,
          run: async (round) => {
            const { value, base } = await run(round)
            return { [id]: value, [`${id}@base`]: base }
          },
        })
      for (const impl of impls.slice(1)) {
        add(`seq:${impl.id}`, (r) =>
          pairedBlocks((op) => seq(op, config.seqOps), floor, impl.op, config.blocks, r),
        )
        add(`c64:${impl.id}`, (r) =>
          pairedBlocks(
            (op) => inflight(op, 64, config.inflightWaves),
            floor,
            impl.op,
            config.blocks,
            r,
          ),
        )
        add(`idle:${impl.id}`, (r) =>
          pairedAfterIdle(floor, impl.op, config.idleSamples, config.idleGapMs, r),
        )
        add(`js:${impl.id}`, (r) =>
          withStubbedSign(() =>
            pairedBlocks((op) => seq(op, config.jsOps), floor, impl.op, config.blocks, r),
          ),
        )
      }
      // Network: the bearer request is the baseline of the signed one.
      add('net-seq', (r) =>
        pairedBlocks((op) => seq(op, config.netSeqOps), bearer, signed, config.blocks, r),
      )
      add('net-seq-raw', (r) =>
        pairedBlocks((op) => seq(op, config.netSeqOps), bearer, rawSigned, config.blocks, r),
      )
      add('net-c32', (r) =>
        pairedBlocks(
          (op) => inflight(op, 32, config.netConcurrentWaves),
          bearer,
          signed,
          config.blocks,
          r,
        ),
      )
      return {
        caseIds: cases.map((c) => c.id),
        floorInputLength: floorInput.length,
        crossOriginIsolated: globalThis.crossOriginIsolated,
        userAgent: navigator.userAgent,
        publicJwk: await crypto.subtle.exportKey('jwk', kp.publicKey),
      }
    },

    async round(index) {
      const k = index % cases.length
      const order = [...cases.slice(k), ...cases.slice(0, k)]
      const out: RoundResult = {}
      for (const c of order) Object.assign(out, await c.run(index))
      return out
    },

    async countCalls() {
      const proto = SubtleCrypto.prototype as unknown as Record<
        string,
        (...args: unknown[]) => Promise<unknown>
      >
      const names = ['sign', 'digest', 'exportKey', 'importKey', 'generateKey', 'verify'] as const
      const originals = new Map(names.map((n) => [n, proto[n]!]))
      let calls = 0
      for (const n of names) {
        const original = originals.get(n)!
        proto[n] = function (this: SubtleCrypto, ...args: unknown[]) {
          calls++
          return original.apply(this, args)
        }
      }
      const warm: Record<string, number> = {}
      const newToken: Record<string, number> = {}
      try {
        const { nonce } = cfg!
        // Fresh instances per implementation, as an app would have; each warmed once before counting.
        for (const impl of impls) {
          if (impl.id === 'floor') continue
          await impl.op()
          calls = 0
          const n = 16
          for (let i = 0; i < n; i++) await impl.op()
          warm[impl.id] = calls / n
        }
        const kp = keyPair!
        const fresh = () => ascii(1024)
        const perNewToken: Record<string, () => Promise<unknown>> = {
          ours: () => createProof(kp, { htm: 'GET', htu: STUB_URL, accessToken: fresh(), nonce }),
          dpop: () => generateProof(kp, STUB_URL, 'GET', nonce, fresh()),
          o4w: () => o4wRequest(fresh()),
        }
        perNewToken.fetch = () => makeOursFetch(fresh)(STUB_URL)
        for (const [id, op] of Object.entries(perNewToken)) {
          calls = 0
          await op()
          newToken[id] = calls
        }
      } finally {
        for (const n of names) proto[n] = originals.get(n)!
      }
      // A new signed fetch instance shares the per-key cache in proof.ts, so its first call
      // has no exportKey: what it shows is the per-token digest, as intended.
      return { warm, newToken }
    },

    async samples() {
      const { token, nonce } = cfg!
      const kp = keyPair!
      const out: ProofSample[] = []
      const push = (impl: string, proof: string) =>
        out.push({
          impl,
          proof,
          htm: 'GET',
          htu: STUB_URL,
          signingInputLength: proof.lastIndexOf('.'),
        })
      push('ours', await createProof(kp, { htm: 'GET', htu: STUB_URL, accessToken: token, nonce }))
      push('dpop', await generateProof(kp, STUB_URL, 'GET', nonce, token))
      await o4wRequest(token, 'o4w')
      push('o4w', captured.get('o4w') ?? '')
      const f = makeOursFetch(() => token, 'fetch')
      await f(STUB_URL) // learns the nonce from the stub's DPoP-Nonce
      await f(STUB_URL)
      push('fetch', captured.get('fetch') ?? '')
      return out
    },
  }
}

window.__bench = createBenchPage()
