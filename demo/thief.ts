/**
 * "Replay a stolen token": what an attacker who copied the access token (from a log, a
 * proxy, a HAR file) can do with it from a client that does not hold the browser's key.
 * It uses plain `fetch`, never the SDK's signed fetch, and a key pair of its own.
 */
import { createProof, generateKeyPair } from 'dpop-spa'

/** One replay attempt and how the API answered. */
export interface ReplayOutcome {
  /** What the thief tried. */
  attempt: string
  status: number
  /** The API's JSON error body: `error`, `error_description` and the name of the failed `check`. */
  body:
    | {
        error?: string | undefined
        error_description?: string | undefined
        check?: string | undefined
      }
    | undefined
  /** Whether the thief first had to fetch a nonce (RFC 9449 §9) to get that far. */
  neededNonce: boolean
}

async function errorBody(response: Response): Promise<ReplayOutcome['body']> {
  try {
    const b = (await response.json()) as Record<string, unknown>
    const s = (v: unknown) => (typeof v === 'string' ? v : undefined)
    return {
      ...(s(b.error) ? { error: s(b.error) } : {}),
      ...(s(b.error_description) ? { error_description: s(b.error_description) } : {}),
      ...(s(b.check) ? { check: s(b.check) } : {}),
    }
  } catch {
    return undefined
  }
}

/**
 * Sends `accessToken` to `url` twice, as a thief would: once with a valid DPoP proof
 * signed by a freshly generated key (answering the API's nonce challenge like a real
 * client), once as a Bearer token. The token goes only to `url`.
 */
export async function replayStolenToken(
  accessToken: string,
  url: string,
): Promise<ReplayOutcome[]> {
  const thiefKey = await generateKeyPair()
  const withProof = async (nonce: string | undefined): Promise<Response> => {
    const proof = await createProof(thiefKey, { htm: 'GET', htu: url, accessToken, nonce })
    return fetch(url, { headers: { Authorization: `DPoP ${accessToken}`, DPoP: proof } })
  }
  let response = await withProof(undefined)
  let neededNonce = false
  const nonce = response.headers.get('DPoP-Nonce')
  if (
    response.status === 401 &&
    nonce &&
    /use_dpop_nonce/.test(response.headers.get('WWW-Authenticate') ?? '')
  ) {
    // A real attacker retries with the server's nonce too: the refusal must come from the key binding.
    neededNonce = true
    await response.body?.cancel()
    response = await withProof(nonce)
  }
  const dpop: ReplayOutcome = {
    attempt: 'DPoP, proof signed by another key',
    status: response.status,
    body: await errorBody(response),
    neededNonce,
  }

  const bearerResponse = await fetch(url, { headers: { Authorization: `Bearer ${accessToken}` } })
  const bearer: ReplayOutcome = {
    attempt: 'Bearer, no proof',
    status: bearerResponse.status,
    body: await errorBody(bearerResponse),
    neededNonce: false,
  }
  return [dpop, bearer]
}
