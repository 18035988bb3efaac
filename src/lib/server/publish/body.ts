import type {IncomingMessage} from 'node:http'
import {formatSize} from '../../util/size.js'
import {CHUNK_COST, type BodyBudget} from './body-budget.js'
import {HttpError} from '../http/http-error.js'

export function tooLarge(limit: number, what = 'message'): HttpError {
  return new HttpError(413, `${what} larger than the limit of ${formatSize(limit)}`, {}, true)
}

/** The declared Content-Length, or undefined for a chunked body. */
export function declaredLength(req: IncomingMessage): number | undefined {
  const header = req.headers['content-length']
  return header === undefined ? undefined : Number(header)
}

/**
 * A body of one chunk is a slice of the socket read it came in, often 64 KiB:
 * kept in the history as it is, a 64-byte message would pin all of it. One
 * much smaller than what it shares is copied (small ones into Node's pool).
 */
function ownBytes(body: Buffer): Buffer {
  return body.buffer.byteLength > 2 * body.length + 4096 ? Buffer.from(body) : body
}

/**
 * Reads a request body into one Buffer, refusing it (413) the moment it is
 * known to be over the limit: up front from Content-Length, else as soon as
 * the bytes pass it. Memory is taken from `budget` as the bytes arrive (a
 * declared length reserves nothing), and the body is refused (503) when it
 * would take the budget past its cap. Resolves undefined when the client goes
 * away before the body is complete, so nothing half-received is ever published.
 */
export function readBody(req: IncomingMessage, limit: number, budget: BodyBudget): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const length = declaredLength(req)
    if (length !== undefined && length > limit) {
      reject(tooLarge(limit))
      return
    }

    // Node hands over each chunk as a Buffer of its own: they are kept as
    // they come and joined once at the end (a body of one chunk not even then).
    const chunks: Buffer[] = []
    let received = 0
    let held = 0
    let done = false
    const finish = (error?: HttpError): void => {
      if (done) return
      done = true
      req.off('data', onData)
      req.resume()
      const body = error || !req.complete ? undefined : chunks.length === 1 ? ownBytes(chunks[0]) : Buffer.concat(chunks, received)
      chunks.length = 0
      budget.release(held)
      if (error) reject(error)
      else resolve(body)
    }

    const onData = (data: Buffer): void => {
      if (received + data.length > limit) {
        finish(tooLarge(limit))
        return
      }

      if (!budget.take(data.length + CHUNK_COST)) {
        finish(budget.refuse())
        return
      }

      held += data.length + CHUNK_COST
      chunks.push(data)
      received += data.length
    }

    req.on('data', onData)
    req.on('end', () => finish())
    req.on('close', () => {
      if (!req.complete) finish()
    })
  })
}
