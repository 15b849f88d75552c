// @vitest-environment node
import { beforeAll, describe, expect, it } from 'vitest'
import { createDPoPFetch } from '../src/fetch/dpop-fetch.ts'
import { generateKeyPair } from '../src/proof/keys.ts'
import { isDPoPError } from '../src/base/errors.ts'
import { challenge, stubFetch, type Call } from './support/stub-api.ts'

const API = 'https://api.example.com'
const URL_ = `${API}/upload?x=1`
let keys: CryptoKeyPair
beforeAll(async () => {
  keys = await generateKeyPair()
})

const utf8 = (s: string) => new TextEncoder().encode(s)

/** An API that demands a nonce first, so every body has to be sent twice. */
function nonceFirstApi() {
  return stubFetch((call) =>
    call.proof?.payload.nonce === 'n1'
      ? new Response('ok')
      : challenge('use_dpop_nonce', { 'DPoP-Nonce': 'n1' }),
  )
}

async function sendTwice(input: string | Request, init?: RequestInit): Promise<[Call, Call]> {
  const api = nonceFirstApi()
  const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
  const res = await dpopFetch(input, init)
  expect(res.status).toBe(200)
  expect(api.calls).toHaveLength(2)
  const [a, b] = api.calls as [Call, Call]
  expect(a.proof?.payload.jti).not.toBe(b.proof?.payload.jti)
  return [a, b]
}

/** Both attempts carry `expected` byte-for-byte with the same Content-Type. */
function expectSameBody([a, b]: [Call, Call], expected: Uint8Array, contentType: string | null) {
  expect(Buffer.from(a.body).equals(Buffer.from(expected))).toBe(true)
  expect(Buffer.from(b.body).equals(Buffer.from(expected))).toBe(true)
  expect(a.headers.get('content-type')).toBe(contentType)
  expect(b.headers.get('content-type')).toBe(contentType)
}

describe('request bodies survive a DPoP retry', () => {
  it('string', async () => {
    expectSameBody(
      await sendTwice(URL_, { method: 'POST', body: 'héllo wörld' }),
      utf8('héllo wörld'),
      'text/plain;charset=UTF-8',
    )
  })

  it('JSON string with an explicit Content-Type', async () => {
    const json = JSON.stringify({ a: [1, 2, 3], b: 'ü' })
    expectSameBody(
      await sendTwice(URL_, {
        method: 'PUT',
        body: json,
        headers: { 'Content-Type': 'application/json' },
      }),
      utf8(json),
      'application/json',
    )
  })

  it('Blob keeps its type', async () => {
    const bytes = new Uint8Array([0, 1, 2, 250, 255])
    expectSameBody(
      await sendTwice(URL_, {
        method: 'POST',
        body: new Blob([bytes], { type: 'application/x-thing' }),
      }),
      bytes,
      'application/x-thing',
    )
  })

  it('ArrayBuffer', async () => {
    const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 31 + 7) & 0xff)
    expectSameBody(
      await sendTwice(URL_, { method: 'POST', body: bytes.slice().buffer }),
      bytes,
      null,
    )
  })

  it('typed array views send only their window', async () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 4, 9, 9])
    expectSameBody(
      await sendTwice(URL_, { method: 'POST', body: new Uint8Array(backing.buffer, 2, 4) }),
      new Uint8Array([1, 2, 3, 4]),
      null,
    )
    const int16 = new Int16Array([1, -2, 300])
    expectSameBody(
      await sendTwice(URL_, { method: 'POST', body: int16.subarray(1) }),
      new Uint8Array(int16.buffer, 2, 4),
      null,
    )
  })

  it('DataView', async () => {
    const backing = new Uint8Array([7, 7, 5, 6, 7])
    expectSameBody(
      await sendTwice(URL_, { method: 'POST', body: new DataView(backing.buffer, 2) }),
      new Uint8Array([5, 6, 7]),
      null,
    )
  })

  it('URLSearchParams', async () => {
    const params = new URLSearchParams({ grant: 'x y', ä: '&=' })
    expectSameBody(
      await sendTwice(URL_, { method: 'POST', body: params }),
      utf8(params.toString()),
      'application/x-www-form-urlencoded;charset=UTF-8',
    )
  })

  it('FormData: same multipart bytes and the same boundary', async () => {
    const form = new FormData()
    form.append('name', 'value ü')
    form.append(
      'file',
      new Blob([new Uint8Array([1, 2, 3])], { type: 'application/octet-stream' }),
      'a.bin',
    )
    const [a, b] = await sendTwice(URL_, { method: 'POST', body: form })
    const contentType = a.headers.get('content-type')
    expect(contentType).toMatch(/^multipart\/form-data; boundary=/)
    expectSameBody([a, b], a.body, contentType)
    // And the bytes are the form, as a server would parse them.
    const parsed = await new Response(b.body.slice(), {
      headers: { 'content-type': contentType! },
    }).formData()
    expect(parsed.get('name')).toBe('value ü')
    const file = parsed.get('file') as File
    expect(file.name).toBe('a.bin')
    expect([...new Uint8Array(await file.arrayBuffer())]).toEqual([1, 2, 3])
  })

  it('a Request with a body (cloned before the first send)', async () => {
    const request = new Request(URL_, {
      method: 'POST',
      body: 'from a Request',
      headers: { 'Content-Type': 'text/x-mine' },
    })
    expectSameBody(await sendTwice(request), utf8('from a Request'), 'text/x-mine')
    expect(request.bodyUsed).toBe(true) // consumed, as fetch(request) would
  })

  it('a Request with a FormData body and a lower-case method', async () => {
    const form = new FormData()
    form.append('k', 'v')
    const request = new Request(URL_, { method: 'patch', body: form })
    const [a, b] = await sendTwice(request)
    expect(a.method).toBe('PATCH')
    expect(a.proof?.payload.htm).toBe('PATCH')
    expectSameBody([a, b], a.body, request.headers.get('content-type'))
    expect(new TextDecoder().decode(a.body)).toContain('name="k"')
  })

  it('init.body replaces the body of a Request input, like fetch', async () => {
    const request = new Request(URL_, { method: 'POST', body: 'old' })
    expectSameBody(
      await sendTwice(request, { body: 'new' }),
      utf8('new'),
      'text/plain;charset=UTF-8',
    )
  })

  it('ReadableStream is read into memory before the first send, keeping its Content-Type', async () => {
    const chunks = [
      utf8('chunk-1 '),
      utf8('chunk-2 '),
      crypto.getRandomValues(new Uint8Array(5000)),
    ]
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(c)
        controller.close()
      },
    })
    const expected = new Uint8Array(Buffer.concat(chunks))
    const init = {
      method: 'POST',
      body: stream,
      duplex: 'half',
      headers: { 'Content-Type': 'application/octet-stream' },
    } as RequestInit
    expectSameBody(await sendTwice(URL_, init), expected, 'application/octet-stream')
  })

  it('a locked or already read stream is ERR_BODY_NOT_REPLAYABLE, and nothing is sent', async () => {
    const api = nonceFirstApi()
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(utf8('x'))
        c.close()
      },
    })
    const reader = stream.getReader()
    let caught: unknown
    try {
      await dpopFetch(URL_, { method: 'POST', body: stream, duplex: 'half' } as RequestInit)
    } catch (e) {
      caught = e
    }
    expect(isDPoPError(caught, 'ERR_BODY_NOT_REPLAYABLE')).toBe(true)
    reader.releaseLock()

    const used = new Request(URL_, { method: 'POST', body: 'x' })
    await used.text()
    caught = undefined
    try {
      await dpopFetch(used)
    } catch (e) {
      caught = e
    }
    expect(isDPoPError(caught, 'ERR_BODY_NOT_REPLAYABLE')).toBe(true)
    expect(api.calls).toHaveLength(0)
  })

  it('a stream that fails is never half-sent: the call rejects with its error', async () => {
    const api = nonceFirstApi()
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    const boom = new Error('disk gone')
    const stream = new ReadableStream({
      pull(c) {
        c.enqueue(utf8('part'))
        c.error(boom)
      },
    })
    await expect(
      dpopFetch(URL_, { method: 'POST', body: stream, duplex: 'half' } as RequestInit),
    ).rejects.toBe(boom)
    expect(api.calls).toHaveLength(0)
  })

  it('bodies to other origins are passed through as the same object, not read', async () => {
    const api = nonceFirstApi()
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(utf8('x'))
        c.close()
      },
    })
    const init = { method: 'POST', body: stream, duplex: 'half' } as RequestInit
    await dpopFetch('https://other.example/up', init)
    expect(api.calls[0]?.init).toBe(init)
    expect(api.calls[0]?.init?.body).toBe(stream)
  })
})
