import type {IncomingHttpHeaders} from 'node:http'
import {MULTIPART_FRAMINGS, type MultipartFraming} from '../../protocol/multipart-encoder.js'
import {HttpError} from '../http/http-error.js'

/** `serve --framing`: a framing for every multipart subscription, or `auto`, by User-Agent. */
export type FramingPolicy = 'auto' | MultipartFraming

export const FRAMING_POLICIES: readonly FramingPolicy[] = ['auto', ...MULTIPART_FRAMINGS]

/**
 * Clients that read a 2007 stream and nothing else: libevmsg (the 2007 C
 * library behind test-sub, msgdump.py, msgchat.py), and Python 2's urllib
 * (`Python-urllib/1.17`, msgdump2.py) and urllib2 (`Python-urllib/2.x`).
 * Python 3 says `Python-urllib/3.x` and is left alone: a script of today is
 * as likely to read RFC 2046 as not, and can ask with `?framing=2007`.
 */
const READS_2007 = /^(?:libevmsg\b|Python-urllib\/[12]\.)/

/** `?framing=`: undefined when not given; an unknown value is a 400. */
export function framingParam(value: string | null): MultipartFraming | undefined {
  if (value === null) return undefined
  const framing = MULTIPART_FRAMINGS.find((known) => known === value.toLowerCase())
  if (framing === undefined) {
    throw new HttpError(400, `unknown framing ${JSON.stringify(value)} (known: ${MULTIPART_FRAMINGS.join(', ')})`)
  }

  return framing
}

/** The framing a subscription gets when its URL does not say: the server's, or under `auto` its User-Agent's. */
export function defaultFraming(policy: FramingPolicy, headers: IncomingHttpHeaders): MultipartFraming {
  if (policy !== 'auto') return policy
  return READS_2007.test(headers['user-agent'] ?? '') ? '2007' : 'rfc2046'
}
