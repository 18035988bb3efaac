import type {IncomingMessage, ServerResponse} from 'node:http'
import {ChannelError, BUS_PREFIX, decodeChannel} from '../../protocol/channel.js'
import type {Gate} from '../access/gate.js'
import type {AccessLog} from '../ops/access-log.js'
import type {Logger} from '../ops/log.js'
import type {Docroot} from '../pages/docroot.js'
import {publish, type PublishContext} from '../publish/publish.js'
import type {Streams} from '../stream/streams.js'
import {subscribe, type SubscribeContext} from '../stream/subscribe.js'
import type {Admission} from './admission.js'
import {HttpError, observeRefusal, sendError} from './http-error.js'
import {framingError} from './request-checks.js'

/** What the router hands requests to, and what it checks first. */
export interface RouterContext {
  readonly gate: Gate
  readonly publisher: PublishContext
  readonly subscriber: SubscribeContext
  readonly docroot: Docroot | undefined
  readonly streams: Streams
  readonly admission: Admission
  readonly logger: Logger
  /** Refusals, and at -vv every request that is neither a publish nor a stream. */
  readonly accessLog: AccessLog
  readonly serverHeader: string
}

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

async function route(ctx: RouterContext, req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): Promise<void> {
  const {path, query} = splitTarget(req.url ?? '/')
  const isBus = path.startsWith(BUS_PREFIX)
  // A publish logs its own line (publish.ts), and a stream its own two (streams.ts).
  if (!(isBus && req.method === 'POST')) ctx.accessLog.answered(req, res, isBus ? 'bus' : 'document')
  const admitted = ctx.gate.admit(req, isBus && req.method === 'POST')
  const principal = admitted instanceof Promise ? await admitted : admitted
  // A client that left while its password was being hashed: nothing to answer (its close has been and gone).
  if (req.socket.destroyed) return

  if (path === '/msgbus') {
    const location = BUS_PREFIX + (query ? `?${query}` : '')
    throw new HttpError(308, `moved to ${location}`, {Location: location})
  }

  if (isBus) {
    const cors = ctx.gate.corsHeaders(req)
    for (const [name, value] of Object.entries(cors)) res.setHeader(name, value)
    let channel: string
    try {
      channel = decodeChannel(path.slice(BUS_PREFIX.length))
    } catch (error) {
      if (error instanceof ChannelError) throw new HttpError(400, error.message, {}, false, {cause: error})
      throw error
    }

    switch (req.method) {
      case 'GET':
      case 'HEAD':
        return subscribe(ctx.subscriber, req, res, channel, query, cors, ctx.gate.subscriptionFilter(principal, channel))
      case 'POST':
        if (channel === '') throw new HttpError(400, 'cannot publish to every channel: name a channel, as in /msgbus/foo')
        ctx.gate.checkPublish(req, principal, channel)
        return publish(ctx.publisher, req, res, channel, principal.user, expectsContinue)
      case 'OPTIONS':
        if (ctx.gate.preflight(req, res)) return
        res.writeHead(204, {Allow: BUS_METHODS})
        res.end()
        return
      default:
        throw new HttpError(405, `method ${req.method} is not allowed on a bus URL`, {Allow: BUS_METHODS})
    }
  }

  if (!ctx.docroot) throw new HttpError(404, `not found: ${path}`)
  if (expectsContinue) res.writeContinue()
  await ctx.docroot.serve(req, res, path)
}

/**
 * The request listener for HTTP and HTTPS alike. `expectsContinue` is set
 * for requests that asked for `100 Continue`, which is sent only once the
 * request passed every check that does not need its body.
 */
export function createRequestHandler(ctx: RouterContext) {
  return (req: IncomingMessage, res: ServerResponse, expectsContinue = false): void => {
    // A client that pipelines a request behind its subscription can never get
    // an answer: the stream never ends. Close it rather than queue requests
    // forever. A connection refused at connect time has had its answer.
    if (ctx.streams.isStream(req.socket) || ctx.admission.isRefused(req.socket)) {
      req.socket.destroy()
      return
    }

    res.setHeader('Server', ctx.serverHeader)
    observeRefusal(res, ctx.accessLog.onRefusal)
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
