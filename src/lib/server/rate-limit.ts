/**
 * Publishes per second per client, as token buckets: each client may burst
 * up to `rate` publishes, then gets one more every 1/rate seconds. Buckets
 * that have filled up again are forgotten, so memory follows the clients
 * active in the last few seconds, not every client ever seen.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, {tokens: number; at: number}>()
  private readonly burst: number
  private readonly sweeper: NodeJS.Timeout

  constructor(
    readonly rate: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.burst = Math.max(1, rate)
    this.sweeper = setInterval(() => this.sweep(), 10_000)
    this.sweeper.unref()
  }

  /** Takes a token for `key`: 0 when the publish may go ahead, else the seconds until it may. */
  take(key: string): number {
    const now = this.now()
    const bucket = this.buckets.get(key)
    let tokens = this.burst
    if (bucket) tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate)
    if (tokens < 1) {
      if (bucket) {
        bucket.tokens = tokens
        bucket.at = now
      }

      return (1 - tokens) / this.rate
    }

    if (bucket) {
      bucket.tokens = tokens - 1
      bucket.at = now
    } else {
      this.buckets.set(key, {tokens: tokens - 1, at: now})
    }

    return 0
  }

  get size(): number {
    return this.buckets.size
  }

  sweep(): void {
    const now = this.now()
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.rate >= this.burst) this.buckets.delete(key)
    }
  }

  close(): void {
    clearInterval(this.sweeper)
  }
}
