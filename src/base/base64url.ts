/** base64url (RFC 4648 §5, no padding) and UTF-8 helpers. Internal. */

const encoder = new TextEncoder()
// Pure: bundles that never decode (the primitives) can drop it.
const decoder = /* @__PURE__ */ new TextDecoder()

/** UTF-8 bytes of a string. */
export function utf8(value: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(value)
}

/** String from UTF-8 bytes. */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes)
}

type WithToBase64 = Uint8Array & {
  toBase64?: (options: { alphabet: 'base64url'; omitPadding: boolean }) => string
}

/** base64url without padding of the given bytes. */
export function encodeBase64url(input: Uint8Array | ArrayBuffer): string {
  const bytes: WithToBase64 = input instanceof Uint8Array ? input : new Uint8Array(input)
  // Native where the browser has it (Chromium 140+, Firefox 133+, Safari 18.2+): one call
  // instead of a binary string, btoa and three replaces, on every proof.
  if (bytes.toBase64) return bytes.toBase64({ alphabet: 'base64url', omitPadding: true })
  // String.fromCharCode over chunks: btoa wants a binary string, and spreading
  // a large array at once overflows the call stack.
  let binary = ''
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/**
 * Writes the char codes of an ASCII string (its UTF-8 bytes) into `out` from `at`; `out`
 * must have room. Skips TextEncoder: in Chromium its calls (an ArrayBuffer each, and a copy
 * of the string into Blink) were most of a proof's own JavaScript.
 */
export function asciiInto(value: string, out: Uint8Array, at: number): void {
  for (let i = 0; i < value.length; i++) out[at + i] = value.charCodeAt(i)
}

/** Bytes of a base64url string (padding optional). Throws `TypeError` on characters outside the alphabet. */
export function decodeBase64url(value: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(value)) throw new TypeError('not base64url')
  const binary = atob(value.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, ''))
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/**
 * The JSON of one part of a compact JWS (0: header, 1: payload), or `undefined` when the
 * value has not three parts or that part is not base64url JSON. Never throws.
 */
export function decodeJwtPart(jws: string, index: 0 | 1): unknown {
  const parts = jws.split('.')
  if (parts.length !== 3) return undefined
  try {
    return JSON.parse(fromUtf8(decodeBase64url(parts[index] ?? ''))) as unknown
  } catch {
    return undefined
  }
}
