import type {Socket} from 'node:net'
import {nativeFunctions, plainSocketFd} from '../../util/native-module.js'

const IN_FLIGHT = Symbol('msgbus.requestsInFlight')
const CORKED = Symbol('msgbus.corked')
type Counted = Socket & {[IN_FLIGHT]?: number; [CORKED]?: boolean}

/** A request began on the socket: it counts until its response closes. */
export function requestBegun(socket: Socket): void {
  const counted = socket as Counted
  counted[IN_FLIGHT] = (counted[IN_FLIGHT] ?? 0) + 1
}

/** Its response closed (written, or the connection gone). */
export function requestEnded(socket: Socket): void {
  const counted = socket as Counted
  counted[IN_FLIGHT] = (counted[IN_FLIGHT] ?? 1) - 1
}

/** `0`: answers are never corked (each is written as Node writes it), for comparison. */
export const NATIVE_CORK_ENV = 'MSGBUS_NATIVE_CORK'

interface CorkFunctions {
  corkSocket(fd: number, on: boolean): number
}

/**
 * Sends the answers of pipelined requests together. Node writes a response
 * only once the one before it on the connection is written, a write each,
 * and a small write is a TCP segment of its own: on loopback (and to a
 * client that reads as segments come) the receiving side's work runs for
 * every one, and the client is woken for every one. When an answer is about
 * to be written and more requests are in flight on its connection, the
 * socket is corked (TCP_CORK, src/native/cork.c) until the end of this turn
 * of the event loop: the answers written meanwhile (Node writes the next
 * ones as each is done, in the same turn) leave in as few segments as they
 * fit in. A connection with one request at a time is never corked, and a
 * TLS one neither (its bytes are the TLS layer's to write).
 */
export class AnswerCork {
  private readonly cork: CorkFunctions['corkSocket'] | undefined
  private corked: Counted[] = []

  constructor(enabled = process.env[NATIVE_CORK_ENV] !== '0') {
    this.cork = enabled ? nativeFunctions<CorkFunctions>(['corkSocket']).functions?.corkSocket : undefined
  }

  /** Before the answer to a request on `socket` is written. */
  beforeAnswer(socket: Socket): void {
    const counted = socket as Counted
    if (this.cork === undefined || counted[CORKED] === true || (counted[IN_FLIGHT] ?? 0) < 2) return
    const fd = plainSocketFd(socket)
    if (fd < 0 || this.cork(fd, true) !== 0) return
    counted[CORKED] = true
    this.corked.push(counted)
    if (this.corked.length === 1) setImmediate(this.uncorkAll)
  }

  private readonly uncorkAll = (): void => {
    const corked = this.corked
    this.corked = []
    for (const socket of corked) {
      socket[CORKED] = false
      // A socket destroyed since has no handle (and its number may be another socket's by now): nothing to do.
      const fd = plainSocketFd(socket)
      if (fd >= 0) this.cork?.(fd, false)
    }
  }
}
