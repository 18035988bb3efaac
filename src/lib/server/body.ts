import type {IncomingMessage} from 'node:http'
import {formatSize} from '../util/size.js'
import {HttpError} from './http-error.js'

export function tooLarge(limit: number, what = 'message'): HttpError {
  return new HttpError(413, `${what} larger than the limit of ${formatSize(limit)}`, {}, true)
}

/** The declared Content-Length, or undefined for a chunked body. */
export function declaredLength(req: IncomingMessage): number | undefined {
  const header = req.headers['content-length']
  return header === undefined ? undefined : Number(header)
}

/**
 * Reads a request body into one Buffer, refusing it (413) the moment it is
 * known to be over the limit: up front from Content-Length, else as soon as
 * the bytes pass it. Resolves undefined when the client goes away before the
 * body is complete, so nothing half-received is ever published.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const length = declaredLength(req)
    if (length !== undefined && length > limit) {
      reject(tooLarge(limit))
      return
    }

    // With a known length the body lands in one allocation; chunked bodies are gathered.
    const whole = length === undefined ? undefined : Buffer.allocUnsafe(length)
    const chunks: Buffer[] = []
    let received = 0
    let done = false
    const finish = (result: Buffer | undefined, error?: HttpError): void => {
      if (done) return
      done = true
      req.off('data', onData)
      req.resume()
      if (error) reject(error)
      else resolve(result)
    }

    const onData = (data: Buffer): void => {
      if (received + data.length > limit) {
        finish(undefined, tooLarge(limit))
        return
      }

      if (whole) data.copy(whole, received)
      else chunks.push(data)
      received += data.length
    }

    req.on('data', onData)
    req.on('end', () => finish(whole ?? (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received))))
    req.on('close', () => {
      if (!req.complete) finish(undefined)
    })
  })
}
