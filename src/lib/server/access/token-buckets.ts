/** A bucket: its tokens when last touched, and when (milliseconds, the clock's). */
export interface TokenBucket {
  tokens: number
  at: number
}

/**
 * Token buckets per key (a client address, a user name): a key holds at
 * most `burst` tokens and gets `perSecond` more a second. Buckets that are
 * whole again are forgotten (`sweep`): a key that has none counts as whole,
 * so memory follows the keys active lately, not every key ever seen. At most
 * `maxKeys` are kept, the least recently touched going first, so keys an
 * attacker makes up cannot grow memory either. `B` carries what a user of
 * the buckets keeps per key besides.
 */
export class TokenBuckets<B extends TokenBucket = TokenBucket> {
  private readonly buckets = new Map<string, B>()

  constructor(
    readonly burst: number,
    readonly perSecond: number,
    readonly maxKeys: number,
    readonly now: () => number = () => performance.now(),
  ) {}

  private refilled(bucket: TokenBucket, now: number): number {
    return Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond)
  }

  /** The tokens `key` holds now. */
  level(key: string): number {
    const bucket = this.buckets.get(key)
    return bucket ? this.refilled(bucket, this.now()) : this.burst
  }

  /** Seconds until `key` holds a whole token; 0 when it does. */
  wait(key: string): number {
    const tokens = this.level(key)
    return tokens >= 1 ? 0 : (1 - tokens) / this.perSecond
  }

  /**
   * `key`'s bucket brought up to now (made by `fresh` when it has none), and
   * made the most recently touched: the caller then takes its tokens.
   */
  touch(key: string, fresh: (now: number) => B): B {
    const now = this.now()
    let bucket = this.buckets.get(key)
    if (bucket) {
      this.buckets.delete(key)
      bucket.tokens = this.refilled(bucket, now)
      bucket.at = now
    } else {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!)
      bucket = fresh(now)
    }

    this.buckets.set(key, bucket)
    return bucket
  }

  get size(): number {
    return this.buckets.size
  }

  /** Forgets the buckets that are whole again. */
  sweep(): void {
    const now = this.now()
    for (const [key, bucket] of this.buckets) if (this.refilled(bucket, now) >= this.burst) this.buckets.delete(key)
  }
}
