/**
 * A small log-linear histogram of non-negative integers (latencies in µs).
 * Values below 2·SUB are kept exactly; above, each power of two is split into
 * SUB equal buckets, so a reported quantile is within 1/SUB (1.6 %) of the
 * true value. Recording is a few integer operations and one array increment.
 */
const SUB_BITS = 6
const SUB = 1 << SUB_BITS // 64 buckets per power of two
const LINEAR = 2 * SUB // 0..127 exact
const MAX_SHIFT = 31 - SUB_BITS // values up to 2^31 - 1

export class Histogram {
  private readonly counts = new Float64Array(LINEAR + MAX_SHIFT * SUB)
  total = 0
  max = 0
  min = Number.POSITIVE_INFINITY
  sum = 0

  static indexOf(value: number): number {
    if (value < LINEAR) return value
    const shift = 31 - Math.clz32(value) - SUB_BITS // >= 1
    return LINEAR + (shift - 1) * SUB + ((value >>> shift) - SUB)
  }

  /** The largest value that falls in bucket `index`. */
  static highestOf(index: number): number {
    if (index < LINEAR) return index
    const shift = Math.floor((index - LINEAR) / SUB) + 1
    const mantissa = ((index - LINEAR) % SUB) + SUB
    return ((mantissa + 1) << shift) - 1
  }

  record(value: number): void {
    let v = value < 0 ? 0 : Math.round(value)
    if (v > 0x7fffffff) v = 0x7fffffff
    this.counts[Histogram.indexOf(v)]++
    this.total++
    this.sum += v
    if (v > this.max) this.max = v
    if (v < this.min) this.min = v
  }

  /** The value at quantile q (0..1): the top of the bucket holding it, capped at the maximum seen. */
  quantile(q: number): number {
    if (this.total === 0) return Number.NaN
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.min(Histogram.highestOf(i), this.max)
    }

    return this.max
  }

  get mean(): number {
    return this.total === 0 ? Number.NaN : this.sum / this.total
  }
}
