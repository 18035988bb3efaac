/**
 * Upper bounds, in seconds, of the publish latency buckets: from a publish
 * on loopback with no history to disk (~0.1-1 ms) to one that waits for an
 * fdatasync on a slow disk or a busy server (tens of ms and more).
 */
export const PUBLISH_LATENCY_BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const

/** A histogram as Prometheus has it: counts at or under each bound (cumulative), and all of them with their sum. */
export interface BucketCounts {
  buckets: Array<{le: number; count: number}>
  count: number
  sum: number
}

/**
 * A histogram of fixed buckets for the hot path: observe() is a few
 * comparisons and additions on numbers it owns, and allocates nothing.
 * prom-client's own Histogram hashes labels on every observation; this one
 * is read only when scraped (snapshot()).
 */
export class LatencyBuckets {
  /** Per bucket, not cumulative; the last slot is above every bound (+Inf). */
  private readonly counts: Float64Array
  private total = 0
  private sum = 0

  constructor(private readonly bounds: readonly number[] = PUBLISH_LATENCY_BOUNDS) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(seconds: number): void {
    const {bounds} = this
    let bucket = 0
    while (bucket < bounds.length && seconds > bounds[bucket]) bucket++
    this.counts[bucket]++
    this.total++
    this.sum += seconds
  }

  snapshot(): BucketCounts {
    let running = 0
    const buckets = this.bounds.map((le, bucket) => ({le, count: (running += this.counts[bucket])}))
    return {buckets, count: this.total, sum: this.sum}
  }
}
