import type {IncomingMessage, ServerResponse} from 'node:http'
import {HTTP_TOKEN} from '../../protocol/http-token.js'
import {codedError} from '../../util/errors.js'

const ALLOWED_METHODS = 'GET, HEAD, POST'
/** Request headers a page may send when the preflight does not list its own. */
const DEFAULT_ALLOWED_HEADERS = 'Authorization, Content-Type, Last-Event-ID'
/** The publish response's own headers, which a page's script may read. */
const EXPOSED_HEADERS = 'Msgbus-Id, Msgbus-Subscribers, Msgbus-Replay-From, Msgbus-Gap'
const TOKEN_LIST = new RegExp(`^${HTTP_TOKEN}(?:\\s*,\\s*${HTTP_TOKEN})*$`)

/** An `--cors` value that is neither `*` nor an origin. */
export class CorsOptionError extends codedError('ERR_MSGBUS_OPTION_INVALID') {}

/**
 * Cross-origin access to bus URLs (`serve --cors`). `*` lets any page
 * subscribe and publish without credentials; named origins are echoed back
 * and may send credentials (Basic auth, the shared secret). A page from any
 * other origin gets no CORS headers (and publish-origin.ts refuses its
 * publishes).
 */
export class CorsPolicy {
  private readonly any: boolean
  private readonly origins: Set<string>

  constructor(values: readonly string[]) {
    const origins = values.flatMap((value) => value.split(',')).map((value) => value.trim()).filter(Boolean)
    this.any = origins.includes('*')
    this.origins = new Set(origins.filter((origin) => origin !== '*').map(normalizeOrigin))
  }

  /** How far a page of `origin` is let in: by name (credentials too), as one of any (`*`), or not at all. */
  admits(origin: string): 'named' | 'any' | 'none' {
    if (this.origins.has(origin)) return 'named'
    return this.any ? 'any' : 'none'
  }

  /** The headers every response to a cross-origin request on a bus URL carries. */
  responseHeaders(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin
    // A named origin is echoed (credentials and all) even beside `*`, as publish-origin.ts lets it publish with them;
    // then every answer depends on the origin.
    const vary: Record<string, string> = this.origins.size > 0 ? {Vary: 'Origin'} : {}
    if (origin === undefined || this.admits(origin) === 'none') return vary
    if (this.admits(origin) === 'any') return {'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': EXPOSED_HEADERS, ...vary}
    return {
      'Access-Control-Allow-Origin': origin,
      'Access-Control-Allow-Credentials': 'true',
      'Access-Control-Expose-Headers': EXPOSED_HEADERS,
      Vary: 'Origin',
    }
  }

  /** Answers a preflight (OPTIONS with Origin and Access-Control-Request-Method). */
  preflight(req: IncomingMessage, res: ServerResponse): void {
    const headers: Record<string, string> = {...this.responseHeaders(req), Allow: `${ALLOWED_METHODS}, OPTIONS`}
    if (headers['Access-Control-Allow-Origin'] !== undefined) {
      const asked = req.headers['access-control-request-headers']
      headers['Access-Control-Allow-Methods'] = ALLOWED_METHODS
      headers['Access-Control-Allow-Headers'] = asked !== undefined && TOKEN_LIST.test(asked.trim()) ? asked.trim() : DEFAULT_ALLOWED_HEADERS
      headers['Access-Control-Max-Age'] = '86400'
      headers.Vary = 'Origin, Access-Control-Request-Headers'
      delete headers['Access-Control-Expose-Headers']
    }

    res.writeHead(204, headers)
    res.end()
  }
}

/** `https://Example.com:443/` as browsers send it: `https://example.com`. */
function normalizeOrigin(value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch (error) {
    throw new CorsOptionError(`--cors: ${JSON.stringify(value)} is not an origin (scheme://host[:port]) or *`, {cause: error})
  }

  if (url.origin === 'null' || url.pathname !== '/' || url.search || url.hash || url.username) {
    throw new CorsOptionError(`--cors: ${JSON.stringify(value)} is not an origin (scheme://host[:port]) or *`)
  }

  return url.origin
}
