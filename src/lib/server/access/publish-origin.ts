import type {IncomingMessage} from 'node:http'
import type {CorsPolicy} from './cors.js'

/** Fetch Metadata values of a request a page of another origin (or another port of this host) made. */
const FOREIGN_SITES = new Set(['cross-site', 'same-site'])

/** The origin a browser on this server's own pages sends: `http://host:port` as the Host header names it. */
function ownOrigin(req: IncomingMessage): string {
  const scheme = (req.socket as {encrypted?: boolean}).encrypted ? 'https' : 'http'
  return `${scheme}://${req.headers.host ?? ''}`.toLowerCase()
}

/**
 * Why a publish is refused because a page of another origin made it, or
 * undefined when it may go on. A browser sends a foreign page's cached
 * credentials (Basic auth, the shared secret) with a cross-site form or
 * fetch, and the publish would happen even though the page never reads the
 * answer: so the server refuses what it cannot tell from a forgery. Clients
 * that are not browsers send neither Origin nor Fetch Metadata, and are not
 * affected. `--cors` names the origins whose pages may publish; `*` lets any
 * page publish, but only without credentials.
 */
export function foreignPublisher(req: IncomingMessage, cors: CorsPolicy | undefined): string | undefined {
  const site = req.headers['sec-fetch-site']?.toLowerCase()
  // Set by the browser, never by the page: this origin's own pages, or the user typing a URL.
  if (site === 'same-origin' || site === 'none') return undefined
  const origin = req.headers.origin
  const foreign = FOREIGN_SITES.has(site ?? '') || (origin !== undefined && origin.toLowerCase() !== ownOrigin(req))
  if (!foreign) return undefined
  const from = origin === undefined ? 'a page of another site' : origin === 'null' ? 'a page of no origin (a sandboxed frame, a data: or file: URL)' : `a page of ${origin}`
  const allowed = origin === undefined ? 'none' : (cors?.admits(origin) ?? 'none')
  if (allowed === 'named') return undefined
  if (allowed === 'any') {
    if (req.headers.authorization === undefined) return undefined
    return `${from} may publish only without credentials under --cors '*' (name its origin with --cors to let it send them)`
  }

  return `${from} may not publish here (cross-origin; see serve --cors)`
}
