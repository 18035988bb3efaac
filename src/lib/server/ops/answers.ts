/**
 * HTTP answers by status code, as they go out. One slot a code, so that
 * counting one allocates nothing; read at scrape time (metrics.ts) and by
 * `counters()`.
 */
export class AnswerTally {
  private readonly counts = new Float64Array(600)

  count(status: number): void {
    if (status >= 100 && status < 600) this.counts[status]++
  }

  /** The codes given at least once, with how many times. */
  byCode(): Record<string, number> {
    const codes: Record<string, number> = {}
    for (let status = 100; status < 600; status++) if (this.counts[status] > 0) codes[status] = this.counts[status]
    return codes
  }
}
