import {TokenBuckets, type TokenBucket} from './token-buckets.js'

/** How a key came to be throttled, for the log line. */
export interface ThrottleStart {
  /** Failures since the key's budget was last whole. */
  failures: number
  /** Seconds from the first of them to the one that throttled the key. */
  seconds: number
  /** Seconds until the key may try again. */
  retryAfter: number
  /** Seconds between tries after that, while it keeps failing. */
  every: number
}

interface Episode extends TokenBucket {
  /** Failures since the budget was last whole, and when the first of them came. */
  failures: number
  since: number
  throttled: boolean
}

/**
 * Failed logins per key (a client, a user name), as token buckets of
 * failures (token-buckets.ts): a key may fail `burst` times at once, and gets
 * one more try every 60/burst seconds (`burst` a minute). Once its budget is
 * spent the key is throttled until its next token.
 *
 * A throttle is one episode until the budget is whole again (a minute
 * without failures at most), however often the key spends each new token:
 * `fail` reports its start once, so an attack makes one log line, not one a
 * token. At most `maxKeys` keys are kept, the least recently failed going
 * first: memory stays bounded whatever the keys an attacker makes up.
 */
export class FailureBudget {
  private readonly buckets: TokenBuckets<Episode>

  constructor(
    readonly burst: number,
    maxKeys: number,
    now?: () => number,
  ) {
    this.buckets = new TokenBuckets<Episode>(burst, burst / 60, maxKeys, now)
  }

  /** Seconds until `key` may fail again; 0 when it is not throttled. */
  wait(key: string): number {
    return this.buckets.wait(key)
  }

  /** Whether `key` has failed since its budget was last whole (within the last minute at most). */
  failedRecently(key: string): boolean {
    return this.buckets.level(key) < this.burst
  }

  /** Spends a token of `key`'s; returns how the throttle began when this failure starts one. */
  fail(key: string): ThrottleStart | undefined {
    const bucket = this.buckets.touch(key, (now) => ({tokens: this.burst, at: now, failures: 0, since: now, throttled: false}))
    if (bucket.tokens >= this.burst) Object.assign(bucket, {failures: 0, since: bucket.at, throttled: false})
    // Failures that were in flight when the throttle began do not push it further: a
    // throttled key always gets its next try within 60/burst seconds.
    bucket.tokens = Math.max(0, bucket.tokens - 1)
    bucket.failures++
    if (bucket.tokens >= 1 || bucket.throttled) return undefined
    bucket.throttled = true
    return {failures: bucket.failures, seconds: (bucket.at - bucket.since) / 1000, retryAfter: this.buckets.wait(key), every: 60 / this.burst}
  }

  get size(): number {
    return this.buckets.size
  }

  /** Forgets the keys whose budget is whole again. */
  sweep(): void {
    this.buckets.sweep()
  }
}
