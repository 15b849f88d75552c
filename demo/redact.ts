/**
 * What the demo may show of a JWT: its decoded header and claims, with long values
 * shortened. Never the compact form and never the signature, so nothing on the page can
 * be copied and replayed, and a screenshot leaks nothing.
 */

/** Shortens a long string for display: `abcdefghij…` (length kept in the title attribute by callers). */
export function shorten(value: string, keep = 10): string {
  return value.length <= keep + 1 ? value : `${value.slice(0, keep)}…`
}

function decodePart(part: string | undefined): Record<string, unknown> | undefined {
  if (!part) return undefined
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/')
    const bytes = Uint8Array.from(
      atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), '=')),
      (c) => c.charCodeAt(0),
    )
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes))
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/**
 * The payload (claims) of a compact JWT, or undefined when it is not one. Used to read
 * `exp` and `cnf.jkt` of the access token without ever displaying the token.
 */
export function jwtClaims(jwt: string): Record<string, unknown> | undefined {
  return decodePart(jwt.split('.')[1])
}

/** Shortens the values that are long and opaque (key coordinates, hashes, ids, nonces). */
export function shortenValues(value: unknown, keep = 12): unknown {
  if (typeof value === 'string') return shorten(value, keep)
  if (Array.isArray(value)) return value.map((v) => shortenValues(v, keep))
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        k === 'htu' || k === 'htm' || k === 'typ' || k === 'alg' ? v : shortenValues(v, keep),
      ]),
    )
  }
  return value
}

/**
 * Header and claims of a DPoP proof JWT, for the log: decoded, long values shortened, the
 * signature dropped. Undefined when `proof` is not a compact JWS.
 */
export function proofForDisplay(proof: string): { header: unknown; claims: unknown } | undefined {
  const [h, p] = proof.split('.')
  const header = decodePart(h)
  const claims = decodePart(p)
  if (!header || !claims) return undefined
  return { header: shortenValues(header), claims: shortenValues(claims) }
}
