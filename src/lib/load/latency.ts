import hdr from 'hdr-histogram-js'

export interface LatencySummary {
  p50: number
  p90: number
  p99: number
  max: number
}

/** Latencies in microseconds, reported in milliseconds: an HDR histogram (3 significant digits, up to an hour). */
export class LatencyHistogram {
  private readonly histogram = hdr.build({
    useWebAssembly: false,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  })

  record(micros: number): void {
    // A clock step can make one negative; it still happened, at about no delay.
    this.histogram.recordValue(Math.min(Math.max(1, Math.round(micros)), 3_600_000_000))
  }

  get count(): number {
    return this.histogram.totalCount
  }

  add(other: LatencyHistogram): void {
    this.histogram.add(other.histogram)
  }

  reset(): void {
    this.histogram.reset()
  }

  summary(): LatencySummary {
    const ms = (micros: number) => Math.round(micros) / 1000
    if (this.histogram.totalCount === 0) return {p50: 0, p90: 0, p99: 0, max: 0}
    // A percentile is the top of its bucket, which can lie above the largest value recorded: never report p99 > max.
    const max = this.histogram.maxValue
    const at = (percentile: number) => ms(Math.min(this.histogram.getValueAtPercentile(percentile), max))
    return {p50: at(50), p90: at(90), p99: at(99), max: ms(max)}
  }
}
