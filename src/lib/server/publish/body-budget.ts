import {HttpError} from '../http/http-error.js'
import {LogLevel, type Logger} from '../ops/log.js'

/**
 * What a chunk of a body costs besides its bytes: Node hands each one over
 * as a Buffer of its own, and a million 1-byte chunks took 437 MB (Node 20).
 * Counted, so a body sent in tiny chunks is held to what it really costs.
 */
export const CHUNK_COST = 512

/** Seconds a refused publisher is told to wait: bodies in progress finish in moments on a healthy server. */
const RETRY_AFTER = '1'

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`
}

/**
 * The memory held by request bodies that are still arriving, all of them
 * together, against one cap (`--max-body-memory`). Bytes are counted as they
 * arrive, not as they are declared: a request that only declares a length
 * holds nothing. The first refusal is logged, and so is the moment the bodies
 * held are back under half the cap with room for the largest body, not each
 * refusal in between (nor each time a refusal frees enough for one more).
 */
export class BodyBudget {
  /** Bytes (and chunk costs) held now. */
  held = 0
  /** Publishes refused for want of room, since the server started. */
  refusals = 0
  private full = false
  private refusedSinceFull = 0

  constructor(
    /** 0: no cap. */
    readonly cap: number,
    /** The largest body a publish may have: once that fits again, the log says so. */
    private readonly largest: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Before a body is read (and before `100 Continue`): throws 503 when the
   * cap is reached, or the declared length would take the total past it.
   */
  admit(declared: number | undefined): void {
    if (this.cap > 0 && (this.held >= this.cap || this.held + (declared ?? 0) > this.cap)) throw this.refuse()
  }

  /** Counts `bytes` more for a body; false, counting nothing, when they would take the total past the cap. */
  take(bytes: number): boolean {
    if (this.cap > 0 && this.held + bytes > this.cap) return false
    this.held += bytes
    return true
  }

  /** Gives back what a body held, once it is complete, refused, or its client went away. */
  release(bytes: number): void {
    this.held -= bytes
    if (this.full && this.held <= Math.min(this.cap / 2, this.cap - this.largest)) {
      this.full = false
      this.logger.log(
        LogLevel.Always,
        'busy',
        `request bodies back down to ${mib(this.held)} of the ${mib(this.cap)} allowed; ${this.refusedSinceFull} publishes refused meanwhile`,
      )
    }
  }

  /**
   * The 503 for a publish there is no room for. The connection closes after
   * it (once what the client still sends has been read and thrown away for a
   * while, as after a 413): the body may be on its way, and reading it only
   * to keep the connection costs what the server is short of.
   */
  refuse(): HttpError {
    this.refusals++
    this.refusedSinceFull++
    if (!this.full) {
      this.full = true
      this.refusedSinceFull = 1
      this.logger.warn('busy', `request bodies hold ${mib(this.held)} of the ${mib(this.cap)} allowed (--max-body-memory): refusing publishes with 503`)
    }

    return new HttpError(
      503,
      `the server holds as many request bodies as it may (${mib(this.cap)}, --max-body-memory); try again shortly`,
      {'Retry-After': RETRY_AFTER},
      true,
    )
  }
}
