import {createLogUpdate} from 'log-update'

/**
 * Interval reports: on a terminal, one live line rewritten in place (with
 * log-update); piped, one plain line per interval, for logs and scripts.
 */
export class Progress {
  private readonly live: ((text: string) => void) & {done(): void; clear(): void} | undefined

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.live = stream.isTTY ? createLogUpdate(stream, {showCursor: true}) : undefined
  }

  update(line: string): void {
    if (this.live) this.live(line)
    else this.stream.write(`${line}\n`)
  }

  /** Leaves the last live line on the screen. */
  done(): void {
    this.live?.done()
  }
}
