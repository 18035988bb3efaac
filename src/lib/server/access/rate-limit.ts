import {TokenBuckets} from './token-buckets.js'

/** Most client addresses remembered at once. */
const MAX_KEYS = 65_536

/**
 * Publishes per second per client, as token buckets: each client may burst
 * up to `rate` publishes, then gets one more every 1/rate seconds.
 */
export class RateLimiter {
  private readonly buckets: TokenBuckets
  private readonly sweeper: NodeJS.Timeout

  constructor(
    readonly rate: number,
    now?: () => number,
  ) {
    this.buckets = new TokenBuckets(Math.max(1, rate), rate, MAX_KEYS, now)
    this.sweeper = setInterval(() => this.buckets.sweep(), 10_000)
    this.sweeper.unref()
  }

  /** Takes a token for `key`: 0 when the publish may go ahead, else the seconds until it may. */
  take(key: string): number {
    const wait = this.buckets.wait(key)
    if (wait > 0) return wait
    this.buckets.touch(key, (now) => ({tokens: this.buckets.burst, at: now})).tokens -= 1
    return 0
  }

  get size(): number {
    return this.buckets.size
  }

  sweep(): void {
    this.buckets.sweep()
  }

  close(): void {
    clearInterval(this.sweeper)
  }
}
