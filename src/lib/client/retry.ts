import {setTimeout as sleep} from 'node:timers/promises'
import {ClientError, isRetryable} from './http.js'

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
      if (!(error instanceof ClientError) || !isRetryable(error) || left <= 0 || options.signal?.aborted) throw error
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
