import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {WEB_ROOT} from '../../assets.js'
import {reasonOf} from '../../util/errors.js'

/**
 * The page is served at the bus URL itself, so it is one self-contained
 * file; it reaches nothing but its own origin, and what messages carry can
 * show only as data: or blob: images and media, and as HTML in sandboxed
 * srcdoc frames (which frame-src does not govern). No frame may load a
 * blob: or data: URL: a blob: document has the bus's origin.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'unsafe-inline'",
  "style-src 'unsafe-inline'",
  'img-src data: blob:',
  'media-src data: blob:',
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  // Same-origin pages may embed it; a foreign page may not frame it to trick clicks.
  "frame-ancestors 'self'",
].join('; ')

/** The live page a browser gets when it navigates to a bus URL: it subscribes with EventSource and shows messages by type. */
export class Viewer {
  private constructor(private readonly page: Buffer) {}

  static readonly path = join(WEB_ROOT, 'viewer.html')

  /** Reads the page once, at start-up; a bus without it still serves every stream. */
  static async load(path = Viewer.path): Promise<Viewer | Error> {
    try {
      return new Viewer(await readFile(path))
    } catch (error) {
      return new Error(`cannot read the viewer page ${path}: ${reasonOf(error)}`, {cause: error})
    }
  }

  serve(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): void {
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': String(this.page.length),
      'Content-Security-Policy': CONTENT_SECURITY_POLICY,
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'SAMEORIGIN',
      'Referrer-Policy': 'no-referrer',
    })
    res.end(req.method === 'HEAD' ? undefined : this.page)
  }
}
