import type {IncomingHttpHeaders} from 'node:http'
import Negotiator from 'negotiator'
import type {StreamFormat} from '../protocol/stream-encoder.js'
import {HttpError} from './http-error.js'

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

/** Fetch destinations of a navigation: a person looking at the URL, not a program reading it. */
const DOCUMENT_DESTINATIONS = new Set(['document', 'iframe', 'frame'])

/**
 * Picks what a GET on a bus URL answers with: `?format=` when given, else the
 * viewer page for a browser navigating to the URL, else by Accept.
 */
export function chooseRepresentation(headers: IncomingHttpHeaders, format: string | null): Representation {
  if (format !== null) {
    const asked = format.toLowerCase() as Representation
    if (!REPRESENTATIONS.includes(asked)) {
      throw new HttpError(400, `unknown format ${JSON.stringify(format)} (known: ${REPRESENTATIONS.join(', ')})`)
    }

    return asked
  }

  const destination = headers['sec-fetch-dest']
  if (destination !== undefined && DOCUMENT_DESTINATIONS.has(destination.toLowerCase())) return 'html'
  if (!headers.accept) return 'multipart'
  const chosen = new Negotiator({headers}).mediaType(ACCEPTABLE.map(([type]) => type))
  const found = ACCEPTABLE.find(([type]) => type === chosen)
  if (!found) {
    throw new HttpError(406, `no stream format matches Accept: ${headers.accept} (formats: ${ACCEPTABLE.map(([type]) => type).join(', ')})`)
  }

  return found[1]
}
