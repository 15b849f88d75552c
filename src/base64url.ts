/** base64url (RFC 4648 §5, no padding) and UTF-8 helpers. Internal. */

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** UTF-8 bytes of a string. */
export function utf8(value: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(value)
}

/** String from UTF-8 bytes. */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes)
}

type ToBase64 = (this: Uint8Array, options: { alphabet: 'base64url'; omitPadding: boolean }) => string

/** base64url without padding of the given bytes. */
export function encodeBase64url(input: Uint8Array | ArrayBuffer): string {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input)
  // Native where the browser has it (Chromium 140+, Firefox 133+, Safari 18.2+): one call
  // instead of a binary string, btoa and three replaces, on every proof.
  const native = (bytes as { toBase64?: ToBase64 }).toBase64
  if (native) return native.call(bytes, { alphabet: 'base64url', omitPadding: true })
  // String.fromCharCode over chunks: btoa wants a binary string, and spreading
  // a large array at once overflows the call stack.
  let binary = ''
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[])
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** base64url of the UTF-8 bytes of a string. */
export function encodeBase64urlString(value: string): string {
  return encodeBase64url(utf8(value))
}

/** Bytes of a base64url string (padding optional). Throws `TypeError` on characters outside the alphabet. */
export function decodeBase64url(value: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(value)) throw new TypeError('not base64url')
  const binary = atob(value.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, ''))
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}
