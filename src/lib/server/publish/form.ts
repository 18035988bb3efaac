import type {IncomingMessage} from 'node:http'
import busboy from 'busboy'
import {mediaTypeOrReason, withFileName, type MediaType} from '../../protocol/media-type.js'
import {tooLarge} from './body.js'
import {CHUNK_COST, type BodyBudget} from './body-budget.js'
import {messageOf} from '../../util/errors.js'
import {HttpError} from '../http/http-error.js'

export interface FormPart extends MediaType {
  body: Buffer
}

export interface FormLimits {
  maxMessageSize: number
  maxRequestSize: number
}

/** busboy reports a part's type without parameters; plain text fields are UTF-8 once decoded. */
function partType(mimeType: string, isField: boolean): MediaType {
  const parsed = mediaTypeOrReason(mimeType)
  if (typeof parsed === 'string') throw new HttpError(400, `form part has an invalid content type: ${parsed}`)
  return isField && mimeType.startsWith('text/') ? {full: `${parsed.full}; charset=utf-8`, essence: parsed.essence} : parsed
}

/**
 * A field's bytes: latin1-decoded text maps back byte for byte. A field that
 * named its own charset was decoded with it; any code unit past 0xFF shows
 * that, and such text is sent on as UTF-8.
 */
function fieldBytes(value: string): Buffer {
  // eslint-disable-next-line no-control-regex
  return /[^\u0000-\u00ff]/.test(value) ? Buffer.from(value, 'utf8') : Buffer.from(value, 'latin1')
}

/**
 * Each part is a message published at once with the rest: a bound on how
 * many one request can hold. It also keeps the 204's Msgbus-Id list (about
 * 17 bytes a part) well inside the 16 KiB of headers Node's and undici's
 * clients read.
 */
export const MAX_FORM_PARTS = 500

/** The 400 for a form busboy cannot read, its error as the cause. */
function malformed(error: unknown): HttpError {
  return new HttpError(400, `malformed form: ${messageOf(error)}`, {}, false, {cause: error})
}

/**
 * Reads a multipart/form-data body as a stream: each part becomes one
 * message. A part over maxMessageSize or a form over maxRequestSize is a 413
 * the moment it is passed; a malformed form is a 400. All or nothing: the
 * parts are resolved together only once the whole form arrived intact, and
 * undefined when the client went away. The form's bytes are taken from
 * `budget` as they arrive, as a plain body's are (see readBody).
 */
export function readForm(req: IncomingMessage, limits: FormLimits, budget: BodyBudget): Promise<FormPart[] | undefined> {
  return new Promise((resolve, reject) => {
    let parser: busboy.Busboy
    try {
      // busboy flags a part as over its limit once it *reaches* fileSize or
      // fieldSize bytes, and a form once it reaches `parts` parts; ours are
      // the largest accepted, so one more.
      const partLimit = limits.maxMessageSize + 1
      parser = busboy({
        headers: req.headers,
        // busboy hands fields (parts without a filename) over as decoded text.
        // Decoding as latin1 maps byte n to code unit n, so the bytes can be
        // recovered exactly, whatever the field holds (UTF-8 text, or a PNG
        // sent as `-F 'img=<f.png;type=image/png'`).
        defCharset: 'latin1',
        // A file name as curl and browsers send it: UTF-8 (withFileName keeps it as RFC 2231 asks).
        defParamCharset: 'utf8',
        limits: {fileSize: partLimit, fieldSize: partLimit, parts: MAX_FORM_PARTS + 1},
      })
    } catch (error) {
      reject(malformed(error))
      return
    }

    const parts: FormPart[] = []
    let received = 0
    let held = 0
    let done = false
    const finish = (result: FormPart[] | undefined, error?: HttpError): void => {
      if (done) return
      done = true
      req.unpipe(parser)
      req.off('data', count)
      budget.release(held)
      // Whatever is still coming is read and thrown away, never buffered.
      req.resume()
      if (error) reject(error)
      else resolve(result)
    }

    // busboy's parts are views into the request's chunks: what the request brought is what the form holds.
    const count = (data: Buffer): void => {
      received += data.length
      if (received > limits.maxRequestSize) {
        finish(undefined, tooLarge(limits.maxRequestSize, 'form'))
        return
      }

      if (!budget.take(data.length + CHUNK_COST)) {
        finish(undefined, budget.refuse())
        return
      }

      held += data.length + CHUNK_COST
    }

    const guard = (work: () => void): void => {
      try {
        work()
      } catch (error) {
        finish(undefined, error instanceof HttpError ? error : new HttpError(400, String(error), {}, false, {cause: error}))
      }
    }

    parser.on('field', (_name, value, info) =>
      guard(() => {
        if (info.valueTruncated) throw tooLarge(limits.maxMessageSize, 'form part')
        const {full, essence} = partType(info.mimeType, true)
        parts.push({full, essence, body: fieldBytes(value)})
      }),
    )
    parser.on('file', (_name, stream, info) => {
      const chunks: Buffer[] = []
      let type: MediaType
      guard(() => {
        // An uploaded file keeps its name: a viewer or chat can offer it for download as that.
        const own = partType(info.mimeType, false)
        type = {full: withFileName(own.full, info.filename ?? ''), essence: own.essence}
      })
      const index = parts.length
      parts.push(undefined as unknown as FormPart)
      stream.on('data', (data: Buffer) => chunks.push(data))
      stream.on('limit', () => finish(undefined, tooLarge(limits.maxMessageSize, 'form part')))
      // A form cut off inside a file part: busboy errors the part's stream too (the parser's own error answers it).
      stream.on('error', (error: Error) => finish(undefined, malformed(error)))
      stream.on('end', () => {
        if (type) parts[index] = {full: type.full, essence: type.essence, body: Buffer.concat(chunks)}
      })
    })
    parser.on('partsLimit', () => finish(undefined, new HttpError(413, `a form has at most ${MAX_FORM_PARTS} parts`, {}, true)))
    parser.on('error', (error: Error) => finish(undefined, malformed(error)))
    parser.on('close', () => {
      if (done) return
      if (parts.length === 0) finish(undefined, new HttpError(400, 'the form has no parts'))
      else finish(parts)
    })
    req.on('data', count)
    req.on('close', () => {
      if (!req.complete) finish(undefined)
    })
    req.pipe(parser)
  })
}
