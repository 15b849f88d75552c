/** Request bodies and JSON answers of the demo API, shared by its routes and its control routes. */
import type { IncomingMessage, ServerResponse } from 'node:http'

/** A body over the route's limit (the server answers 413). */
export class BodyTooLarge extends Error {}

/** The whole body. @throws {BodyTooLarge} past `max` bytes (the request is then destroyed) */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > max) {
        reject(new BodyTooLarge())
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** Answers `body` as JSON, never cached. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status
  res.setHeader('Content-Type', 'application/json')
  res.setHeader('Cache-Control', 'no-store')
  res.end(JSON.stringify(body))
}

/**
 * A JSON object body (at most 64 KiB); `{}` when empty.
 * @throws {SyntaxError} for malformed JSON; {@link TypeError} for JSON that is not an object
 */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const raw = (await readBody(req, 64 * 1024)).toString('utf8')
  if (raw === '') return {}
  const value: unknown = JSON.parse(raw)
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new TypeError('body must be a JSON object')
  return value as Record<string, unknown>
}
