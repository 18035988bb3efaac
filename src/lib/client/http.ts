import {Agent, type Dispatcher} from 'undici'
import type {ClientOptions, Target} from './target.js'

/** A request that failed: one line naming the URL and the reason. */
export class ClientError extends Error {
  constructor(
    message: string,
    /** The HTTP status, when the server answered. */
    readonly status?: number,
  ) {
    super(message)
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
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed (temporary)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed by the server',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_HEADERS_TIMEOUT: 'no response from the server',
  UND_ERR_BODY_TIMEOUT: 'the server stopped sending',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS: self-signed certificate (use --cacert FILE or --insecure)',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS: self-signed certificate in the chain (use --cacert FILE or --insecure)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS: unable to verify the certificate (use --cacert FILE or --insecure)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'TLS: unknown certificate issuer (use --cacert FILE or --insecure)',
  CERT_HAS_EXPIRED: 'TLS: certificate has expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'TLS: certificate is not for this host name',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS: the server does not speak TLS on this port',
}

/** Turns whatever undici or the socket threw into one line: `<url>: <reason>`. */
export function describeFailure(target: Target | string, error: unknown): ClientError {
  if (error instanceof ClientError) return error
  const where = typeof target === 'string' ? target : target.display
  let cause = error as (Error & {code?: string; cause?: unknown}) | undefined
  while (cause && !(cause.code && REASONS[cause.code]) && cause.cause instanceof Error) cause = cause.cause as typeof cause
  const code = cause?.code
  const reason = (code && REASONS[code]) ?? (cause?.message || String(error))
  return new ClientError(`${where}: ${reason}`)
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
