import {realpath, stat} from 'node:fs/promises'
import type {IncomingMessage, ServerResponse} from 'node:http'
import {STATUS_CODES} from 'node:http'
import {join, normalize, sep} from 'node:path'
import send from 'send'
import {ChannelError, percentDecode} from '../../protocol/channel.js'
import {HttpError, sendError} from '../http/http-error.js'
import {silentLogger, type Logger} from '../ops/log.js'
import {MsgbusError, messageOf} from '../../util/errors.js'

export const DOCUMENT_METHODS = 'GET, HEAD, OPTIONS'

/**
 * A static file server over one folder, on `send`: index.html for folders,
 * types by extension, ETag/Last-Modified, Range. Confined to the folder:
 * `..` (encoded or not) is refused by send, and every path is resolved
 * through symlinks and must still lie inside the root's real path, so
 * neither a link nor a sibling such as `www2` beside `www` is reachable.
 */
export class Docroot {
  private constructor(
    readonly root: string,
    private readonly logger: Logger,
  ) {}

  /** Opens the folder, failing with a clear reason (ERR_MSGBUS_DOCROOT_INVALID) when it is missing or not a folder. */
  static async open(folder: string, logger: Logger = silentLogger): Promise<Docroot> {
    let root: string
    try {
      root = await realpath(folder)
    } catch (error) {
      throw new MsgbusError('ERR_MSGBUS_DOCROOT_INVALID', `document root ${folder}: ${messageOf(error, {ENOENT: 'no such folder'})}`, {cause: error})
    }

    if (!(await stat(root)).isDirectory()) throw new MsgbusError('ERR_MSGBUS_DOCROOT_INVALID', `document root ${folder}: not a folder`)
    return new Docroot(root, logger)
  }

  private async confined(path: string): Promise<boolean> {
    let decoded: string
    try {
      decoded = percentDecode(path)
    } catch (error) {
      throw new HttpError(400, (error as ChannelError).message, {}, false, {cause: error})
    }

    if (decoded.includes('\0')) throw new HttpError(400, 'NUL in the path')
    const target = normalize(join(this.root, decoded))
    if (target !== this.root && !target.startsWith(this.root + sep)) return false
    try {
      const real = await realpath(target)
      return real === this.root || real.startsWith(this.root + sep)
    } catch {
      // Not there (or unreadable): send answers that with its own 404.
      return true
    }
  }

  async serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {Allow: DOCUMENT_METHODS})
      res.end()
      return
    }

    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new HttpError(405, `method ${req.method} is not allowed here`, {Allow: DOCUMENT_METHODS})
    }

    if (!(await this.confined(path))) throw new HttpError(403, `${path} is outside the document root`)
    await new Promise<void>((resolve) => {
      send(req, path, {root: this.root, index: ['index.html']})
        .on('error', (error: {status?: number; statusCode?: number; code?: string}) => {
          if (error.code === 'EMFILE' || error.code === 'ENFILE') {
            // Not the file's fault, nor the client's: the process is out of descriptors for now.
            this.logger.warn('document', `${path}: out of file descriptors (raise ulimit -n, or lower --max-connections)`)
            sendError(res, 503, `cannot open ${path} now: the server is out of file descriptors`, {'Retry-After': '1'})
            resolve()
            return
          }

          const status = error.status ?? error.statusCode ?? 500
          sendError(res, status, `${STATUS_CODES[status]?.toLowerCase() ?? 'error'}: ${path}`)
          resolve()
        })
        .on('directory', () => {
          // The path as requested (origin-form), its query kept whole. Leading
          // slashes collapsed, as send and serve-static do: `//host/` (or
          // `/\host/`) would send a browser to another site.
          const url = req.url ?? ''
          const mark = url.indexOf('?')
          const location = path.replace(/^[/\\]+/, '/') + '/' + (mark < 0 ? '' : url.slice(mark))
          sendError(res, 301, `moved to ${location}`, {Location: location})
          resolve()
        })
        .on('end', resolve)
        .pipe(res)
    })
  }
}
