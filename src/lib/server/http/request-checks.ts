import type {IncomingMessage} from 'node:http'
import {HttpError} from './http-error.js'

/**
 * What Node's HTTP parser lets through but RFC 9112 refuses, checked before
 * a request is routed. Each refusal closes the connection: after a framing
 * error nothing more on it can be trusted.
 */
export function framingError(req: IncomingMessage): HttpError | undefined {
  if (req.httpVersionMajor !== 1) {
    return new HttpError(505, `HTTP/${req.httpVersion} is not supported here: msgbus speaks HTTP/1.0 and HTTP/1.1`, {}, true)
  }

  // Node keeps the first of several Host headers; a proxy in front may have routed by another.
  const raw = req.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') hosts++
  if (hosts > 1) return new HttpError(400, 'more than one Host header', {}, true)
  // RFC 9112 3.2; checked here rather than by Node (requireHostHeader), whose 400 has no reason and no Server header.
  if (hosts === 0 && req.httpVersionMinor >= 1) return new HttpError(400, 'an HTTP/1.1 request needs a Host header', {}, true)

  // The parser has checked that chunked comes last, once; a coding before it
  // we cannot undo, and the body would be published as it came, gzip bytes and all.
  const transferEncoding = req.headers['transfer-encoding']
  if (transferEncoding !== undefined && !/^[ \t]*chunked[ \t]*$/i.test(transferEncoding)) {
    const others = transferEncoding.split(',').map((coding) => coding.trim().toLowerCase()).filter((coding) => coding !== 'chunked')
    return new HttpError(501, `transfer coding ${JSON.stringify(others.join(', '))} is not supported (only chunked)`, {}, true)
  }

  return undefined
}
