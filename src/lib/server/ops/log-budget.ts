import type {Logger} from './log.js'

const WINDOW_MS = 60_000

/**
 * Warnings of one event, at most `perMinute` lines a minute, and at most one
 * a minute per subject (a client, a user): an attack from many addresses
 * cannot flood the log. What was held back is counted in one line when the
 * minute is over (at the next line, or the next `flush`).
 */
export class LogBudget {
  private windowStart = -Infinity
  private written = 0
  private held = 0
  /** Subjects logged in this window; at most `perMinute`. */
  private readonly subjects = new Set<string>()

  constructor(
    private readonly logger: Logger,
    private readonly event: string,
    readonly perMinute = 10,
    private readonly now: () => number = () => performance.now(),
  ) {}

  warn(subject: string, detail: string): void {
    this.flush()
    if (this.written >= this.perMinute || this.subjects.has(subject)) {
      this.held++
      return
    }

    this.written++
    this.subjects.add(subject)
    this.logger.warn(this.event, detail)
  }

  /** Starts a new minute when the last is over, reporting what it held back. */
  flush(): void {
    const now = this.now()
    if (now - this.windowStart < WINDOW_MS) return
    if (this.held > 0) this.logger.warn(this.event, `${this.held} more such line${this.held === 1 ? '' : 's'} not logged (at most ${this.perMinute} a minute, one per client or user)`)
    this.windowStart = now
    this.written = 0
    this.held = 0
    this.subjects.clear()
  }
}
