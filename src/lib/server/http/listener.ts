import {createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {createServer as createHttpsServer} from 'node:https'
import type {Socket} from 'node:net'
import {X509Certificate, createPrivateKey} from 'node:crypto'
import {createSecureContext, type SecureContextOptions} from 'node:tls'
import type {AnswerTally} from '../ops/answers.js'
import type {AccessLog} from '../ops/access-log.js'
import type {Streams} from '../stream/streams.js'
import type {Admission} from './admission.js'
import {observeRefusal, rawErrorResponse, sendError} from './http-error.js'
import {requestBegun, requestEnded} from './answer-cork.js'
import {endAndLinger} from './linger.js'
import {MsgbusError, messageOf} from '../../util/errors.js'

/** What a listener needs besides its request handler. */
export interface ListenerContext {
  /** Seconds a client has to send a request's whole head (and, over TLS, to finish its handshake). */
  readonly headerTimeout: number
  /** Seconds a keep-alive connection may wait between requests. */
  readonly idleTimeout: number
  readonly serverHeader: string
  readonly streams: Streams
  readonly admission: Admission
  /** Answers by status: counted here, but for streams (streams.ts) and refusals at connect (admission.ts). */
  readonly answers: AnswerTally
  readonly accessLog: AccessLog
}

/** How often Node checks its connections for header timeouts; the timeout itself is `--header-timeout`. */
const CHECK_INTERVAL_MS = 1000

type Handler = (req: IncomingMessage, res: ServerResponse, expectsContinue?: boolean) => void

/** The llhttp reason ("Invalid HTTP version") as our one-line error: "bad request: invalid HTTP version". */
function badRequestReason(error: NodeJS.ErrnoException & {reason?: string}): string {
  const reason = error.reason ?? error.code ?? error.message
  // A leading header name ("Transfer-Encoding can't...") keeps its case.
  return `bad request: ${/^[A-Z][a-z]+\b(?!-)/.test(reason) ? reason.charAt(0).toLowerCase() + reason.slice(1) : reason}`
}

/**
 * Answers a request Node's parser refused, after the answer to the request
 * before it on the connection, if that one is still being made (a valid
 * publish followed by garbage gets its 204, then the 400).
 */
function refuseAfterPending(socket: Socket, response: string): void {
  const pending = (socket as Socket & {_httpMessage?: ServerResponse})._httpMessage
  // Only when the request before is whole: an error inside its own body ends it now.
  if (pending && !pending.writableFinished && pending.req.complete) {
    socket.pause()
    pending.once('finish', () => endAndLinger(socket, response))
    pending.once('close', () => socket.writable && endAndLinger(socket, response))
    return
  }

  endAndLinger(socket, response)
}

/**
 * Checks a certificate and key before a listener is made with them: a
 * one-line reason instead of a stack. OpenSSL takes a key that does not
 * belong to the certificate without a word (every handshake then fails), so
 * the pair is checked here too.
 */
export function secureOptions(cert: string | Buffer, key: string | Buffer): SecureContextOptions {
  const unusable = (error: unknown) => new MsgbusError('ERR_MSGBUS_TLS_INVALID', `certificate or key unusable: ${messageOf(error)}`, {cause: error})
  let matches: boolean
  try {
    matches = new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))
  } catch (error) {
    throw unusable(error)
  }

  if (!matches) throw new MsgbusError('ERR_MSGBUS_TLS_INVALID', 'the key does not belong to the certificate (its public key is another)')
  try {
    createSecureContext({cert, key})
  } catch (error) {
    throw unusable(error)
  }

  return {cert, key, minVersion: 'TLSv1.2'}
}

/**
 * An HTTP or HTTPS listener for the bus: the request handler, answers for
 * requests Node's parser refused, the timeouts that keep slow or idle
 * clients from holding connections, and admission (admission.ts).
 */
export function createListener(ctx: ListenerContext, handler: Handler, tls?: SecureContextOptions): Server {
  const options = ctx
  // A missing Host is refused by the handler (request-checks.ts), with a reason.
  const common = {connectionsCheckingInterval: CHECK_INTERVAL_MS, requireHostHeader: false}
  const server = tls
    ? (createHttpsServer({...tls, ...common, handshakeTimeout: options.headerTimeout * 1000}) as unknown as Server)
    : createHttpServer(common)
  // The whole head within the header timeout (slowloris); a body may take as
  // long as it keeps moving (publish.ts watches it stall); idle keep-alive
  // connections close after the idle timeout.
  server.headersTimeout = options.headerTimeout * 1000
  server.requestTimeout = 0
  server.keepAliveTimeout = options.idleTimeout * 1000
  // At the response's close: an answer Node wrote has its status, and so has one written raw
  // (http-error.ts sets it); a client gone before any answer has neither. A stream is counted
  // as it begins (streams.ts), its response is let go before it closes (takeover.ts). One
  // listener for all, so counting allocates nothing.
  // A request counts as in flight on its connection until then too (answer-cork.ts).
  const countAnswer = function (this: ServerResponse): void {
    requestEnded(this.req.socket)
    if (this.headersSent || this.statusCode !== 200) ctx.answers.count(this.statusCode)
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    requestBegun(req.socket)
    res.on('close', countAnswer)
    handler(req, res)
  })
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    requestBegun(req.socket)
    res.on('close', countAnswer)
    handler(req, res, true)
  })
  // Without these Node answers by itself: a bare 417, and for CONNECT nothing but a closed connection.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    requestBegun(req.socket)
    res.on('close', countAnswer)
    res.setHeader('Server', ctx.serverHeader)
    observeRefusal(res, ctx.accessLog.onRefusal)
    // Closed after: the body that may follow is not read.
    sendError(res, 417, `expectation ${JSON.stringify(req.headers.expect)} is not supported (only 100-continue)`, {}, true)
  })
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => {})
    if (ctx.admission.isRefused(socket)) return void socket.destroy()
    const reason = 'method CONNECT is not allowed: this is not a proxy'
    ctx.answers.count(405)
    ctx.accessLog.refusedConnection(socket, 405, reason)
    endAndLinger(socket, rawErrorResponse(405, ctx.serverHeader, reason, {Allow: 'GET, HEAD, POST, OPTIONS'}))
  })
  // A TLS handshake that failed or timed out reaches 'clientError' too, but
  // there is no HTTP to answer in, and ending such a socket politely leaves
  // it open for good (CLOSE-WAIT once the client goes): destroy it first.
  if (tls) server.prependListener('tlsClientError', (_error: Error, socket: Socket) => socket.destroy())
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // Bytes after a subscription began are never answered (see router.ts).
    if (!socket.writable || error.code === 'ECONNRESET' || ctx.streams.isStream(socket)) {
      socket.destroy()
      return
    }

    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    const reason = status === 400 ? badRequestReason(error) : status === 408 ? `request head not received within ${options.headerTimeout} s` : undefined
    // The request before may still become a stream (once its password is checked): then this closes it.
    ctx.streams.condemn(socket)
    ctx.answers.count(status)
    ctx.accessLog.refusedConnection(socket, status, reason ?? 'request header fields too large')
    refuseAfterPending(socket, rawErrorResponse(status, ctx.serverHeader, reason))
  })
  ctx.admission.watch(server, Boolean(tls))
  return server
}
