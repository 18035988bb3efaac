export interface LatencySummary {
  p50: number
  p90: number
  p99: number
  max: number
}

/** The largest latency kept apart, in microseconds (an hour); longer ones count as an hour. */
const HIGHEST = 3_600_000_000
/** Values below 2^11 have a bucket each; above, each power of two is cut into 2^10 buckets: 3 significant digits. */
const SUB_BUCKET_BITS = 10
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS
const LENGTH = indexOf(HIGHEST) + 1

/**
 * The bucket of a value from 1 to HIGHEST (below 2^32): the value itself
 * under 2^11, else its top 11 bits after the power of two above them. The
 * buckets of HdrHistogram with 3 significant digits, found with one clz32
 * instead of its log2 and two pow calls per value: test-sub records one
 * value per message.
 */
function indexOf(value: number): number {
  if (value < 2 * SUB_BUCKETS) return value
  const shift = 31 - Math.clz32(value) - SUB_BUCKET_BITS
  return shift * SUB_BUCKETS + (value >>> shift)
}

/** The highest value that falls in bucket `index`. */
function highestIn(index: number): number {
  if (index < 2 * SUB_BUCKETS) return index
  const shift = Math.floor(index / SUB_BUCKETS) - 1
  const lowest = (index - shift * SUB_BUCKETS) * 2 ** shift
  return lowest + 2 ** shift - 1
}

/** Latencies in microseconds, reported in milliseconds: a log-linear histogram (3 significant digits, up to an hour). */
export class LatencyHistogram {
  private readonly counts = new Float64Array(LENGTH)
  private total = 0
  private max = 0

  record(micros: number): void {
    // A clock step can make one negative; it still happened, at about no delay.
    const value = micros < 1 ? 1 : micros > HIGHEST ? HIGHEST : Math.round(micros)
    this.counts[indexOf(value)]++
    this.total++
    if (value > this.max) this.max = value
  }

  get count(): number {
    return this.total
  }

  add(other: LatencyHistogram): void {
    if (other.total === 0) return
    const {counts} = this
    for (let i = 0; i < LENGTH; i++) counts[i] += other.counts[i]
    this.total += other.total
    if (other.max > this.max) this.max = other.max
  }

  /** The highest value of the bucket that holds the value at `percentile`, as HdrHistogram reports it. */
  private atPercentile(percentile: number): number {
    // Rounded up, less the last bit of the product's precision (which can leave it a hair above a whole count), as HdrHistogram does.
    const exact = (percentile / 100) * this.total
    const wanted = Math.max(Math.ceil(exact - 2 ** (Math.floor(Math.log2(exact)) - 52)), 1)
    let seen = 0
    for (let i = 0; i < LENGTH; i++) {
      seen += this.counts[i]
      if (seen >= wanted) return highestIn(i)
    }

    return this.max
  }

  summary(): LatencySummary {
    const ms = (micros: number) => Math.round(micros) / 1000
    if (this.total === 0) return {p50: 0, p90: 0, p99: 0, max: 0}
    // A percentile is the top of its bucket, which can lie above the largest value recorded: never report p99 > max.
    const at = (percentile: number) => ms(Math.min(this.atPercentile(percentile), this.max))
    return {p50: at(50), p90: at(90), p99: at(99), max: ms(this.max)}
  }
}
