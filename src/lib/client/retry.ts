import {setTimeout as sleep} from 'node:timers/promises'
import {ClientError} from './http.js'

/**
 * Statuses worth retrying: the server is there but busy, restarting or
 * behind a proxy that lost it. 501 and 505 are answers about the request
 * itself and stay the same on every try.
 */
function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505)
}

/**
 * Failures of the connection that can heal by themselves: the server is
 * down or restarting, the network is changing. Not among them: an unknown
 * host (ENOTFOUND), any TLS certificate error and a server that does not
 * speak the protocol; those stay the same however long one waits.
 */
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
])

/** Whether trying again later may succeed: see retryableStatus and RETRYABLE_CODES. */
export function canHeal(error: ClientError): boolean {
  if (error.status !== undefined) return retryableStatus(error.status)
  if (error.code !== 'ERR_MSGBUS_REQUEST_FAILED') return false
  for (let cause: unknown = error.cause; cause instanceof Error; cause = cause.cause) {
    const {code} = cause as {code?: unknown}
    if (typeof code === 'string' && RETRYABLE_CODES.has(code)) return true
  }

  return false
}

export interface BackoffOptions {
  /** The first delay; each next one doubles, up to maxDelayMs. */
  minDelayMs?: number
  maxDelayMs?: number
}

/**
 * The delay before attempt `attempt` (1 for the first retry): exponential,
 * capped, and jittered to between half and all of it, so that clients cut
 * off together by a restart do not all come back in the same millisecond.
 */
export function backoffDelay(attempt: number, {minDelayMs = 250, maxDelayMs = 5_000}: BackoffOptions = {}): number {
  const base = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30))
  return Math.round(base / 2 + Math.random() * (base / 2))
}

/** A Retry-After header in seconds, as milliseconds (dates are not worth parsing here); undefined if absent or not a number. */
export function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined || !/^\s*\d+\s*$/.test(text)) return undefined
  return Number(text) * 1000
}

export interface RetryOptions extends BackoffOptions {
  /** Keep trying for this long after the first failure; 0: no retry, Infinity: forever. */
  retryForMs: number
  signal?: AbortSignal
  /** Called before each wait. */
  onRetry?: (info: {attempt: number; delayMs: number; error: ClientError}) => void
}

/**
 * Calls `attempt` until it succeeds, retrying the ClientErrors that can heal
 * with backoff for as long as `retryForMs` allows; throws the last failure.
 */
export async function withRetry<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const started = Date.now()
  for (let count = 1; ; count++) {
    try {
      return await attempt()
    } catch (error) {
      const left = started + options.retryForMs - Date.now()
      if (!(error instanceof ClientError) || !canHeal(error) || left <= 0 || options.signal?.aborted) throw error
      const delayMs = Math.min(left, backoffDelay(count, options))
      options.onRetry?.({attempt: count, delayMs, error})
      try {
        await sleep(delayMs, undefined, {signal: options.signal})
      } catch {
        throw error
      }
    }
  }
}
