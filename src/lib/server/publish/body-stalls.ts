import type {IncomingMessage} from 'node:http'
import type {Socket} from 'node:net'
import {peerOf} from '../http/peer.js'
import type {Logger} from '../ops/log.js'

/** A connection with bodies arriving: how many, and when its bytes last moved. */
interface Watched {
  count: number
  bytesRead: number
  /** performance.now() when bytesRead was last seen to change (or the watch began). */
  since: number
  /** Named when the watch began: once the client is gone the socket may no longer know its peer. */
  peer: string
}

/**
 * Drops a connection whose request body stops arriving for `--body-timeout`
 * seconds: the publish is then incomplete, and nothing of it is published.
 *
 * One timer for the whole server, looking at every watched connection a few
 * times per timeout, rather than a timer a publish: arming and clearing a
 * socket timeout, a listener and a WeakMap entry for every publish cost more
 * than the rest of reading its body. A stall is seen between `seconds` and
 * `seconds` plus a quarter of it (a second at most) after the last byte,
 * never before.
 */
export class BodyStalls {
  private readonly watched = new Map<Socket, Watched>()
  private readonly timeoutMs: number
  private readonly everyMs: number
  private timer: NodeJS.Timeout | undefined

  constructor(
    /** 0: never. */
    private readonly seconds: number,
    private readonly logger: Logger,
  ) {
    this.timeoutMs = seconds * 1000
    this.everyMs = Math.min(1000, Math.max(50, this.timeoutMs / 4))
  }

  /**
   * Watches the request's connection while its body arrives (not at all when
   * the body is already in); returns the function that stops (idempotent).
   * Pipelined publishes share the connection's watch, which ends when the
   * last of them stops.
   */
  watch(req: IncomingMessage): () => void {
    if (this.seconds <= 0 || req.complete) return noop
    const socket = req.socket
    let watch = this.watched.get(socket)
    if (watch) watch.count++
    else {
      watch = {count: 1, bytesRead: socket.bytesRead, since: performance.now(), peer: peerOf(socket)}
      this.watched.set(socket, watch)
      this.timer ??= setInterval(this.sweep, this.everyMs).unref()
    }

    const mine = watch
    let stopped = false
    return () => {
      if (stopped) return
      stopped = true
      // A watch the sweep has ended (the connection dropped) is no longer in the map: nothing to remove.
      if (--mine.count === 0 && this.watched.get(socket) === mine) this.watched.delete(socket)
    }
  }

  close(): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.watched.clear()
  }

  private readonly sweep = (): void => {
    if (this.watched.size === 0) return this.close()
    const now = performance.now()
    for (const [socket, watch] of this.watched) {
      const bytesRead = socket.bytesRead
      if (bytesRead !== watch.bytesRead) {
        watch.bytesRead = bytesRead
        watch.since = now
      } else if (now - watch.since >= this.timeoutMs) {
        this.watched.delete(socket)
        this.logger.warn('stall', `${watch.peer}: no body byte for ${this.seconds} s, dropped`)
        socket.destroy()
      }
    }
  }
}

function noop(): void {}
