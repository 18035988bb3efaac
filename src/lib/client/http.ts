import {Agent, type Dispatcher} from 'undici'
import {MsgbusError, type MsgbusErrorCode} from '../util/errors.js'
import type {ClientOptions, Target} from './target.js'

export type ClientErrorCode = Extract<MsgbusErrorCode, 'ERR_MSGBUS_REQUEST_FAILED' | 'ERR_MSGBUS_HTTP_STATUS' | 'ERR_MSGBUS_RESPONSE_INVALID' | 'ERR_MSGBUS_TARGET_INVALID'>

/**
 * A request that failed: one line naming the URL and the reason. Its code:
 * ERR_MSGBUS_HTTP_STATUS when the server answered with an error `status`;
 * ERR_MSGBUS_REQUEST_FAILED when no answer came (refused, reset, TLS, a
 * timeout, an abort; `cause` is the error from undici or the socket);
 * ERR_MSGBUS_RESPONSE_INVALID when the answer is not what the protocol says
 * (not a multipart stream, one that cannot be read, too few ids);
 * ERR_MSGBUS_TARGET_INVALID when the target names no channel to publish to.
 */
export class ClientError extends MsgbusError {
  declare readonly code: ClientErrorCode

  constructor(
    message: string,
    /** The HTTP status, when the server answered. */
    readonly status?: number,
    options: ErrorOptions & {code?: ClientErrorCode} = {},
  ) {
    super(options.code ?? (status === undefined ? 'ERR_MSGBUS_REQUEST_FAILED' : 'ERR_MSGBUS_HTTP_STATUS'), message, options)
  }
}

/** A dispatcher with the TLS options, or undefined for undici's global one. */
export function dispatcherFor(options: ClientOptions, extra: Agent.Options = {}): Dispatcher | undefined {
  if (options.ca === undefined && !options.insecure && Object.keys(extra).length === 0) return undefined
  return new Agent({...extra, connect: {ca: options.ca, rejectUnauthorized: !options.insecure}})
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset by the server',
  ECONNABORTED: 'connection aborted',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed (temporary)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENETDOWN: 'network down',
  EADDRNOTAVAIL: 'no local address or port free to connect from',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed by the server',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CLOSED: 'connection closed',
  UND_ERR_HEADERS_TIMEOUT: 'no response from the server',
  UND_ERR_BODY_TIMEOUT: 'the server stopped sending',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS: self-signed certificate (use --cacert FILE or --insecure)',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS: self-signed certificate in the chain (use --cacert FILE or --insecure)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS: unable to verify the certificate (use --cacert FILE or --insecure)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'TLS: unknown certificate issuer (use --cacert FILE or --insecure)',
  CERT_HAS_EXPIRED: 'TLS: certificate has expired',
  CERT_NOT_YET_VALID: 'TLS: certificate is not yet valid',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS: certificate is not for this host name',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS: the server does not speak TLS on this port',
}

/**
 * Failures that can heal by themselves, so that trying again later is worth
 * it: the server is down or restarting (refused, reset, closed), the network
 * or the name service hiccups (timeouts, EAI_AGAIN, an unreachable network
 * while a laptop changes networks). Everything else (an untrusted or expired
 * certificate, a wrong host name, a host that does not exist) fails the same
 * way every time: retrying it forever only hides it.
 */
const HEALING_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
])

type CodedError = Error & {code?: string; cause?: unknown}

/** The error in `error`'s cause chain that says what went wrong: a MsgbusError, or one with a code we know; else the last in the chain. */
function rootCause(error: unknown): CodedError | undefined {
  let cause = error as CodedError | undefined
  while (cause && !(cause instanceof MsgbusError) && !(cause.code && REASONS[cause.code]) && cause.cause instanceof Error) cause = cause.cause as CodedError
  return cause
}

/**
 * Whether a failed request is worth trying again: the server answered 408,
 * 429 or 5xx (busy, restarting, or a proxy in front of it that is; not 501
 * or 505, answers about the request itself), or no answer came for a reason
 * that heals (see HEALING_CODES). Any other status (a 4xx: a wrong
 * password, channel or request), a TLS or name failure, an answer that is
 * not the protocol's, or a bad target, will fail again: callers report it at
 * once, naming the reason.
 */
export function isRetryable(error: ClientError): boolean {
  if (error.status !== undefined) return error.status === 408 || error.status === 429 || (error.status >= 500 && error.status !== 501 && error.status !== 505)
  if (error.code !== 'ERR_MSGBUS_REQUEST_FAILED') return false
  const code = rootCause(error.cause)?.code
  return code !== undefined && HEALING_CODES.has(code)
}

/**
 * Turns whatever undici or the socket threw into one line: `<url>: <reason>`,
 * with the error as its cause. A MsgbusError (a MultipartError from the
 * stream) means the answer was unreadable: ERR_MSGBUS_RESPONSE_INVALID.
 * `headersTimedOut`: the reason to give when the request's own headers
 * timeout is what fired (what it means differs: a subscription's head that
 * did not come, a publish's answer, which the server may have taken).
 */
export function describeFailure(target: Target | string, error: unknown, {headersTimedOut}: {headersTimedOut?: string} = {}): ClientError {
  if (error instanceof ClientError) return error
  const where = typeof target === 'string' ? target : target.display
  const cause = rootCause(error)
  const code = cause?.code
  const reason = (code === 'UND_ERR_HEADERS_TIMEOUT' && headersTimedOut) || (code && REASONS[code]) || cause?.message || String(error)
  return new ClientError(`${where}: ${reason}`, undefined, {cause: error, code: error instanceof MsgbusError ? 'ERR_MSGBUS_RESPONSE_INVALID' : 'ERR_MSGBUS_REQUEST_FAILED'})
}

/** Reads an error response's one-line reason and makes it the message. */
export async function statusError(target: Target, statusCode: number, body: Dispatcher.ResponseData['body']): Promise<ClientError> {
  let text = ''
  try {
    text = (await body.text()).trim().split('\n')[0].slice(0, 300)
  } catch {
    // The reason is a courtesy; the status says enough.
  }

  return new ClientError(`${target.display}: ${statusCode}${text ? ` ${text}` : ''}`, statusCode)
}
