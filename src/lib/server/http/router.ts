import type {IncomingMessage, ServerResponse} from 'node:http'
import {ChannelError, BUS_PREFIX, decodeChannel} from '../../protocol/channel.js'
import {parseBasicAuth, secretMatches, type Credentials} from '../access/basic-auth.js'
import {type ServerContext} from '../context.js'
import {peerOf} from './peer.js'
import {HttpError, sendError} from './http-error.js'
import {LogLevel} from '../ops/logger.js'
import {clientOf} from '../access/login-guard.js'
import {publish} from '../publish/publish.js'
import {foreignPublisher} from '../access/publish-origin.js'
import {framingError} from './request-checks.js'
import {subscribe} from '../stream/subscribe.js'

const BUS_METHODS = 'GET, HEAD, POST, OPTIONS'
/** Longer request targets get 414: a channel is at most 255 bytes (765 percent-encoded), filters a few more. */
const MAX_TARGET_LENGTH = 8192

/** Splits a request target into path and query; absolute-form targets (from proxies) lose their origin. */
function splitTarget(url: string): {path: string; query: string} {
  const target = /^https?:\/\//i.test(url) ? url.replace(/^https?:\/\/[^/?#]*/i, '') || '/' : url
  const hash = target.indexOf('#')
  const bare = hash < 0 ? target : target.slice(0, hash)
  const mark = bare.indexOf('?')
  return mark < 0 ? {path: bare, query: ''} : {path: bare.slice(0, mark), query: bare.slice(mark + 1)}
}

function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined
}

/** --secret: 401 without the secret; a throttled client's credentials are not even compared (429). */
function checkSecret(ctx: ServerContext, secret: string, credentials: Credentials | undefined, req: IncomingMessage): void {
  const challenge = {'WWW-Authenticate': 'Basic realm="msgbus"'}
  if (!credentials) throw new HttpError(401, 'authentication required', challenge)
  const client = clientOf(req.socket)
  ctx.logins.admit(client)
  if (secretMatches(secret, credentials.password)) return
  ctx.logins.failed(client)
  throw new HttpError(401, 'authentication required', challenge)
}

async function route(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): Promise<void> {
  const {path, query} = splitTarget(req.url ?? '/')
  // Before any password is checked: a forged publish costs no hashing and no login failure.
  if (req.method === 'POST' && path.startsWith(BUS_PREFIX)) {
    const refusal = foreignPublisher(req, ctx.cors)
    if (refusal !== undefined) throw new HttpError(403, refusal)
  }

  const credentials = parseBasicAuth(req.headers.authorization)
  if (ctx.options.secret !== undefined && !isPreflight(req)) checkSecret(ctx, ctx.options.secret, credentials, req)
  // --acl: 401 unless the credentials check out (or are absent and the ACL admits anonymous requests).
  const principal = ctx.access && !isPreflight(req) ? await ctx.access.authenticate(credentials, clientOf(req.socket)) : undefined
  // A client that left while its password was being hashed: nothing to answer (its close has been and gone).
  if (principal && req.socket.destroyed) return

  if (path === '/msgbus') {
    const location = BUS_PREFIX + (query ? `?${query}` : '')
    throw new HttpError(308, `moved to ${location}`, {Location: location})
  }

  if (path.startsWith(BUS_PREFIX)) {
    const cors = ctx.cors?.responseHeaders(req) ?? {}
    for (const [name, value] of Object.entries(cors)) res.setHeader(name, value)
    let channel: string
    try {
      channel = decodeChannel(path.slice(BUS_PREFIX.length))
    } catch (error) {
      if (error instanceof ChannelError) throw new HttpError(400, error.message)
      throw error
    }

    switch (req.method) {
      case 'GET':
      case 'HEAD':
        return subscribe(ctx, req, res, channel, query, cors, ctx.access?.subscriptionFilter(principal, channel))
      case 'POST':
        ctx.access?.checkPublish(principal, channel)
        return publish(ctx, req, res, channel, credentials?.user || undefined, expectsContinue)
      case 'OPTIONS':
        if (ctx.cors && isPreflight(req)) return ctx.cors.preflight(req, res)
        res.writeHead(204, {Allow: BUS_METHODS})
        res.end()
        return
      default:
        throw new HttpError(405, `method ${req.method} is not allowed on a bus URL`, {Allow: BUS_METHODS})
    }
  }

  if (!ctx.docroot) throw new HttpError(404, `not found: ${path}`)
  if (ctx.logger.level >= LogLevel.Documents) {
    res.once('finish', () =>
      ctx.logger.log(LogLevel.Documents, 'document', `${peerOf(req.socket)} ${req.method} ${path} ${res.statusCode}`),
    )
  }

  if (expectsContinue) res.writeContinue()
  await ctx.docroot.serve(req, res, path)
}

/**
 * The request listener for HTTP and HTTPS alike. `expectsContinue` is set
 * for requests that asked for `100 Continue`, which is sent only once the
 * request passed every check that does not need its body.
 */
export function createRequestHandler(ctx: ServerContext) {
  return (req: IncomingMessage, res: ServerResponse, expectsContinue = false): void => {
    // A client that pipelines a request behind its subscription can never get
    // an answer: the stream never ends. Close it rather than queue requests
    // forever. A connection refused at connect time has had its answer.
    if (ctx.streams.isStream(req.socket) || ctx.refused.has(req.socket)) {
      req.socket.destroy()
      return
    }

    res.setHeader('Server', ctx.serverHeader)
    if (req.url !== undefined && req.url.length > MAX_TARGET_LENGTH) {
      sendError(res, 414, `request target longer than ${MAX_TARGET_LENGTH} bytes`, {Connection: 'close'})
      return
    }

    const refusal = framingError(req)
    if (refusal) {
      sendError(res, refusal.status, refusal.message, refusal.headers, refusal.closeAfter)
      return
    }

    route(ctx, req, res, expectsContinue).catch((error: unknown) => {
      if (error instanceof HttpError) {
        sendError(res, error.status, error.message, error.headers, error.closeAfter)
        return
      }

      ctx.logger.warn('error', `${req.method} ${req.url}: ${(error as Error)?.stack ?? error}`)
      sendError(res, 500, 'internal server error')
    })
  }
}
