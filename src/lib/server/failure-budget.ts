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

interface Bucket {
  tokens: number
  at: number
  failures: number
  since: number
  throttled: boolean
}

/**
 * Failed logins per key (a client, a user name), as token buckets of
 * failures: a key may fail `burst` times at once, and gets one more try every
 * 60/burst seconds (`burst` a minute). Once its budget is spent the key is
 * throttled until its next token.
 *
 * A throttle is one episode until the budget is whole again (a minute
 * without failures at most), however often the key spends each new token:
 * `fail` reports its start once, so an attack makes one log line, not one a
 * token. Buckets that are whole again are forgotten (`sweep`), and at most
 * `maxKeys` are kept, the least recently failed going first: memory stays
 * bounded whatever the keys an attacker makes up.
 */
export class FailureBudget {
  private readonly buckets = new Map<string, Bucket>()
  private readonly perMs: number

  constructor(
    readonly burst: number,
    readonly maxKeys: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.perMs = burst / 60_000
  }

  private tokensOf(bucket: Bucket, now: number): number {
    return Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.perMs)
  }

  /** Seconds until `key` may fail again; 0 when it is not throttled. */
  wait(key: string): number {
    const bucket = this.buckets.get(key)
    if (!bucket) return 0
    const tokens = this.tokensOf(bucket, this.now())
    return tokens >= 1 ? 0 : (1 - tokens) / this.perMs / 1000
  }

  /** Whether `key` has failed since its budget was last whole (within the last minute at most). */
  failedRecently(key: string): boolean {
    const bucket = this.buckets.get(key)
    return bucket !== undefined && this.tokensOf(bucket, this.now()) < this.burst
  }

  /** Spends a token of `key`'s; returns how the throttle began when this failure starts one. */
  fail(key: string): ThrottleStart | undefined {
    const now = this.now()
    let bucket = this.buckets.get(key)
    if (bucket) {
      // Re-inserted, so the map stays in order of the last failure: eviction takes the stalest.
      this.buckets.delete(key)
      bucket.tokens = this.tokensOf(bucket, now)
      bucket.at = now
      if (bucket.tokens >= this.burst) Object.assign(bucket, {failures: 0, since: now, throttled: false})
    } else {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!)
      bucket = {tokens: this.burst, at: now, failures: 0, since: now, throttled: false}
    }

    this.buckets.set(key, bucket)
    // Failures that were in flight when the throttle began do not push it further: a
    // throttled key always gets its next try within 60/burst seconds.
    bucket.tokens = Math.max(0, bucket.tokens - 1)
    bucket.failures++
    if (bucket.tokens >= 1 || bucket.throttled) return undefined
    bucket.throttled = true
    return {failures: bucket.failures, seconds: (now - bucket.since) / 1000, retryAfter: (1 - bucket.tokens) / this.perMs / 1000, every: 60 / this.burst}
  }

  get size(): number {
    return this.buckets.size
  }

  /** Forgets the keys whose budget is whole again. */
  sweep(): void {
    const now = this.now()
    for (const [key, bucket] of this.buckets) if (this.tokensOf(bucket, now) >= this.burst) this.buckets.delete(key)
  }
}
