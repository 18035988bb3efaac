import type {IncomingHttpHeaders} from 'node:http'
import Negotiator from 'negotiator'
import type {StreamFormat} from '../../protocol/stream-encoder.js'
import {HttpError} from '../http/http-error.js'

/** What a GET on a bus URL can answer with: a stream, or the viewer page. */
export type Representation = StreamFormat | 'html'

export const REPRESENTATIONS: readonly Representation[] = ['multipart', 'sse', 'ndjson', 'raw', 'html']

/**
 * Media types an Accept header can pick, in the server's order of
 * preference: a client that accepts anything (curl's `*\/*`, an `<img>`)
 * gets multipart, as it always has. `raw` is only had by asking for it.
 */
const ACCEPTABLE: ReadonlyArray<[string, Representation]> = [
  ['multipart/x-mixed-replace', 'multipart'],
  ['text/event-stream', 'sse'],
  ['application/x-ndjson', 'ndjson'],
  ['application/ndjson', 'ndjson'],
  ['text/html', 'html'],
]

/**
 * Fetch destinations that render what they load as a document: a tab, a
 * frame, an embed. A multipart stream loaded there is shown part by part as
 * pages of the bus's origin (Firefox does), so a published text/html would
 * run its script as the bus.
 */
const DOCUMENT_DESTINATIONS = new Set(['document', 'iframe', 'frame', 'embed', 'object', 'fencedframe'])

/** Formats whose media types no browser renders as a page: text/plain, text/event-stream, NDJSON. */
const INERT_FORMATS = new Set<Representation>(['raw', 'sse', 'ndjson'])

/**
 * A load that would render the answer as a document: by Fetch Metadata, or,
 * from a browser too old to send it, by an Accept that names HTML.
 */
function rendersAsDocument(headers: IncomingHttpHeaders): boolean {
  const destination = headers['sec-fetch-dest']
  if (destination !== undefined) return DOCUMENT_DESTINATIONS.has(destination.toLowerCase())
  return headers.accept !== undefined && /(?:^|[\s,])(?:text\/html|application\/xhtml\+xml)\b/i.test(headers.accept)
}

/**
 * Picks what a GET on a bus URL answers with. A load that renders as a
 * document gets the viewer page, or an inert text stream when `?format=`
 * asks for one, never multipart; otherwise `?format=` when given, else by
 * Accept.
 */
export function chooseRepresentation(headers: IncomingHttpHeaders, format: string | null): Representation {
  let asked: Representation | undefined
  if (format !== null) {
    asked = format.toLowerCase() as Representation
    if (!REPRESENTATIONS.includes(asked)) {
      throw new HttpError(400, `unknown format ${JSON.stringify(format)} (known: ${REPRESENTATIONS.join(', ')})`)
    }
  }

  if (rendersAsDocument(headers)) return asked !== undefined && INERT_FORMATS.has(asked) ? asked : 'html'
  if (asked !== undefined) return asked
  if (!headers.accept) return 'multipart'
  const chosen = new Negotiator({headers}).mediaType(ACCEPTABLE.map(([type]) => type))
  const found = ACCEPTABLE.find(([type]) => type === chosen)
  if (!found) {
    throw new HttpError(406, `no stream format matches Accept: ${headers.accept} (formats: ${ACCEPTABLE.map(([type]) => type).join(', ')})`)
  }

  return found[1]
}
