/**
 * Waiting for something to happen, for the tests, the benchmark and the soak
 * alike: the one polling helper (`until`) and a plain `sleep` for pacing.
 * A test waits for what it expects, never for a guessed while: `until` fails
 * with what it waited for after its timeout, which is only the bound on a
 * defect, not an estimate of how fast this machine is.
 */
import {performance} from 'node:perf_hooks'

/** Resolves after `ms`: for pacing (a rate, a hold), not for waiting on something that can be observed. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Something that changes (bytes arrive, a line is read): an `until` given it re-checks at once, besides its polling. */
export class Changes {
  private waiters: Array<() => void> = []

  /** Wakes every `until` waiting on it. */
  notify(): void {
    for (const wake of this.waiters.splice(0)) wake()
  }

  /** Resolves at the next notify(), or after `ms`. */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.waiters = this.waiters.filter((waiter) => waiter !== done)
        resolve()
      }

      const timer = setTimeout(done, ms)
      this.waiters.push(done)
    })
  }
}

export interface UntilOptions {
  /** Give up after this long (default 5000 ms). */
  timeoutMs?: number
  /** Check this often (default 20 ms; with `changes`, also at each of its notify()). */
  everyMs?: number
  /** Re-check at once when this notifies. */
  changes?: Changes
  /** Checked when `test` does not hold: a reason to give up now (the process exited, the connection closed), or nothing. */
  stop?: () => string | false | undefined
}

/**
 * Resolves once `test()` holds; rejects with `what` (a string, or a function
 * called only then, so it can show the latest state) when `options.stop`
 * gives a reason or after the timeout. `options` may be just the timeout.
 */
export async function until(test: () => boolean | Promise<boolean>, what: string | (() => string), options: number | UntilOptions = {}): Promise<void> {
  const {timeoutMs = 5000, everyMs = 20, changes, stop} = typeof options === 'number' ? {timeoutMs: options} : options
  const describe = (): string => (typeof what === 'function' ? what() : what)
  const deadline = performance.now() + timeoutMs
  for (;;) {
    if (await test()) return
    const reason = stop?.()
    if (reason) throw new Error(`${reason} before ${describe()}`)
    const left = deadline - performance.now()
    if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`)
    await (changes ? changes.next(Math.min(left, everyMs)) : sleep(Math.min(left, everyMs)))
  }
}
