import {STATUS_CODES, type ServerResponse} from 'node:http'
import {MsgbusError} from '../../util/errors.js'
import {endAndLinger} from './linger.js'

/** A request that is refused: the status, and one line saying what was wrong (and the error behind it, as `cause`). */
export class HttpError extends MsgbusError {
  declare readonly code: 'ERR_MSGBUS_REQUEST_REFUSED'

  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    /** Close the connection after answering, reading what the client still sends for a while first. */
    readonly closeAfter = false,
    options?: ErrorOptions,
  ) {
    super('ERR_MSGBUS_REQUEST_REFUSED', message, options)
  }
}

/**
 * Refuses a request mid-body without losing the answer: the response goes
 * out with `Connection: close` and our side of the connection is shut (FIN),
 * while whatever the client is still sending is read and thrown away until it
 * stops or the linger (linger.ts) is over. Node would close at once, resetting a
 * connection with unread data in it, and the client could lose the answer;
 * so this response is written to the socket directly.
 */
function refuseAndLinger(res: ServerResponse, status: number, reason: string, headers: Record<string, string>): void {
  const req = res.req
  // Not sent through res, but what was answered: for whoever counts answers at its close (listener.ts).
  res.statusCode = status
  req.resume()
  const refuse = () => endAndLinger(req.socket, rawErrorResponse(status, String(res.getHeader('Server') ?? 'msgbus'), reason, headers))
  // A pipelined request whose turn has not come (an answer before it is still
  // being made, say a publish waiting for its fsync): Node gives its response
  // the socket once the answers before it are written, and so must we, or
  // this answer would pass theirs and the client pin each on the wrong request.
  if (res.socket) refuse()
  else res.once('socket', refuse)
}

/** An error's body: the reason on one line, whatever it quotes. */
function errorBody(reason: string): string {
  return `${reason.replace(/[\r\n]+/g, ' ')}\n`
}

/** Hears of an error sent on a response: the access log (access-log.ts). */
export type RefusalObserver = (res: ServerResponse, status: number, reason: string) => void

const OBSERVER = Symbol('msgbus.refusalObserver')
type Observed = ServerResponse & {[OBSERVER]?: RefusalObserver}

/**
 * Has `observer` hear of the error, if any, that is sent on `res`: whoever
 * sends it, the router or a page. Kept on the response, not in a WeakMap: an
 * entry a request kept the garbage collector's ephemeron work growing with
 * the publish rate.
 */
export function observeRefusal(res: ServerResponse, observer: RefusalObserver): void {
  ;(res as Observed)[OBSERVER] = observer
}

/** Error bodies are one line of plain text, for curl users and logs alike. */
export function sendError(res: ServerResponse, status: number, reason: string, headers: Record<string, string> = {}, closeAfter = false): void {
  (res as Observed)[OBSERVER]?.(res, status, res.headersSent ? `${reason} (after the answer had begun: connection closed)` : reason)
  if (res.headersSent) {
    res.destroy()
    return
  }

  if (closeAfter) {
    refuseAndLinger(res, status, reason, headers)
    return
  }

  const body = Buffer.from(errorBody(reason))
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'text/plain; charset=utf-8',
    // The reason may quote what the client sent (a pattern, a user name): never anything but text.
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': String(body.length),
  })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

/** The same one-line error, as raw bytes, for sockets that never became a request (clientError). */
export function rawErrorResponse(status: number, serverHeader: string, reason?: string, headers: Record<string, string> = {}): string {
  const text = STATUS_CODES[status] ?? 'Error'
  const body = errorBody(reason ?? text.toLowerCase())
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  return (
    `HTTP/1.1 ${status} ${text}\r\nServer: ${serverHeader}\r\n${extra}Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  )
}
