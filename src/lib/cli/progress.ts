import {createLogUpdate} from 'log-update'

/** The first report comes after this long at most, whatever --interval says: a user sees at once that the tool runs. */
const FIRST_REPORT_MS = 1000

/**
 * Interval reports: on a terminal, one live line rewritten in place (with
 * log-update); piped, one plain line per interval, for logs and scripts.
 */
export class Progress {
  private readonly live: ((text: string) => void) & {done(): void; clear(): void} | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.live = stream.isTTY ? createLogUpdate(stream, {showCursor: true}) : undefined
  }

  /** A line of its own, above any live line: what the run is about to do. */
  note(line: string): void {
    if (this.live) this.live.clear()
    this.stream.write(`${line}\n`)
  }

  update(line: string): void {
    if (this.live) this.live(line)
    else this.stream.write(`${line}\n`)
  }

  /** Reports `line()` within a second, then every `intervalSeconds`, until done(). */
  every(intervalSeconds: number, line: () => string): void {
    const interval = intervalSeconds * 1000
    const tick = (after: number) => {
      this.timer = setTimeout(() => {
        this.update(line())
        tick(interval)
      }, after)
    }

    tick(Math.min(FIRST_REPORT_MS, interval))
  }

  /** Stops the reports, leaving the last live line on the screen. */
  done(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.live?.done()
  }
}
