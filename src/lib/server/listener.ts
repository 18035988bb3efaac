import {createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {createServer as createHttpsServer} from 'node:https'
import type {Socket} from 'node:net'
import {createSecureContext, type SecureContextOptions} from 'node:tls'
import {ConnectionLimit} from './connection-limit.js'
import {addressOf, type ServerContext} from './context.js'
import {rawErrorResponse} from './http-error.js'

/** How often Node checks its connections for header timeouts; the timeout itself is `--header-timeout`. */
const CHECK_INTERVAL_MS = 1000
/** How long a refused connection may still be read (and ignored) so the client sees the answer, not a reset. */
const REFUSE_LINGER_MS = 2000

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
    pending.once('finish', () => socket.end(response))
    pending.once('close', () => socket.writable && socket.end(response))
    return
  }

  socket.end(response)
}

/** Checks a certificate and key before a listener is made with them: a one-line reason instead of a stack. */
export function secureOptions(cert: string | Buffer, key: string | Buffer): SecureContextOptions {
  try {
    createSecureContext({cert, key})
  } catch (error) {
    throw new Error(`certificate or key unusable: ${(error as Error).message}`)
  }

  return {cert, key, minVersion: 'TLSv1.2'}
}

/**
 * An HTTP or HTTPS listener for the bus: the request handler, answers for
 * requests Node's parser refused, the timeouts that keep slow or idle
 * clients from holding connections, and the per-address connection limit.
 */
export function createListener(ctx: ServerContext, handler: Handler, tls?: SecureContextOptions): Server {
  const {options} = ctx
  const server = tls
    ? (createHttpsServer({...tls, connectionsCheckingInterval: CHECK_INTERVAL_MS, handshakeTimeout: options.headerTimeout * 1000}) as unknown as Server)
    : createHttpServer({connectionsCheckingInterval: CHECK_INTERVAL_MS})
  // The whole head within the header timeout (slowloris); a body may take as
  // long as it keeps moving (publish.ts watches it stall); idle keep-alive
  // connections close after the idle timeout.
  server.headersTimeout = options.headerTimeout * 1000
  server.requestTimeout = 0
  server.keepAliveTimeout = options.idleTimeout * 1000
  server.on('request', (req: IncomingMessage, res: ServerResponse) => handler(req, res))
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => handler(req, res, true))
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // Bytes after a subscription began are never answered (see handler.ts).
    if (!socket.writable || error.code === 'ECONNRESET' || ctx.streaming.has(socket)) {
      socket.destroy()
      return
    }

    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    const reason = status === 400 ? badRequestReason(error) : status === 408 ? `request head not received within ${options.headerTimeout} s` : undefined
    refuseAfterPending(socket, rawErrorResponse(status, ctx.serverHeader, reason))
  })
  if (options.maxConnectionsPerIp > 0) limitConnections(ctx, server, new ConnectionLimit(options.maxConnectionsPerIp), Boolean(tls))
  return server
}

/**
 * Refuses a client's connection past the limit with a 503 as soon as it is
 * made (over TLS once the handshake is done), and closes it. A request it
 * sends meanwhile is never handled (see handler.ts).
 */
function limitConnections(ctx: ServerContext, server: Server, limit: ConnectionLimit, secure: boolean): void {
  server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
    if (limit.admit(socket)) return
    ctx.refused.add(socket)
    const reason = `too many connections from ${addressOf(socket)} (the limit is ${limit.max})`
    ctx.logger.warn('refuse', reason)
    socket.end(rawErrorResponse(503, ctx.serverHeader, reason, {'Retry-After': '5'}))
    setTimeout(() => socket.destroy(), REFUSE_LINGER_MS).unref()
  })
}
