import type {Socket} from 'node:net'
import {LogLevel, type Logger} from '../ops/log.js'

export type CapVerdict = 'admit' | 'refuse' | 'drop'

/**
 * The server's open connections, HTTP and HTTPS together, against the cap
 * (`--max-connections`). Each connection takes a file descriptor, and a
 * process out of them accepts nothing more: libuv then accepts and closes new
 * connections itself, silently. So the cap sits below the open-file limit:
 * past it, a connection is answered 503 and closed after a short linger;
 * further past it (refused connections still lingering take descriptors
 * too), closed at once. Either way the log says so, once when it begins and
 * once when it is over, not once per connection.
 */
export class ConnectionCap {
  open = 0
  /** Connections refused since the cap was last reached; 0 while under it. */
  private refusedNow = 0
  refusedTotal = 0

  constructor(
    /** Most connections admitted at once; 0 for no cap. */
    readonly max: number,
    /** Most open at all (refused ones lingering included), past which new ones are closed unanswered. */
    readonly hardMax: number,
    private readonly logger: Logger,
    /** For the log: where the cap comes from. */
    private readonly origin: string,
  ) {}

  /** Counts a new connection until it closes, and says what to do with it. */
  admit(socket: Socket): CapVerdict {
    this.open++
    // on, not once: 'close' comes once anyway, and once() wraps the listener anew for every connection (about 110 bytes each).
    socket.on('close', this.release)
    if (this.max === 0 || this.open <= this.max) return 'admit'
    if (this.refusedNow++ === 0) {
      this.logger.warn('limit', `${this.open - 1} connections open, the limit (${this.origin}): new connections get 503 until some close`)
    }

    this.refusedTotal++
    return this.open > this.hardMax ? 'drop' : 'refuse'
  }

  private readonly release = (): void => {
    this.open--
    // Some room again before saying so, so a server at the edge does not log every connection.
    if (this.refusedNow > 0 && this.open < this.max * 0.9) {
      this.logger.log(LogLevel.Always, 'limit', `back under the connection limit: ${this.open} open; ${this.refusedNow} connections were refused`)
      this.refusedNow = 0
    }
  }
}
