import type {IncomingMessage, ServerResponse} from 'node:http'
import type {Socket} from 'node:net'
import type {Bus} from '../../bus/bus.js'
import type {MessageFilter} from '../../protocol/filter.js'
import type {Gap} from '../../protocol/gap.js'
import type {StreamEncoder, StreamFormat} from '../../protocol/stream-encoder.js'
import {plural} from '../../util/plural.js'
import {channelLabel, peerOf} from '../http/peer.js'
import {LogLevel, type LogFields, type Logger} from '../ops/log.js'
import type {SocketWriter} from './socket-writer.js'
import {replay} from './replay.js'
import {HttpSubscription} from './subscription.js'
import {takeOver} from './takeover.js'

/** What a new stream is: decided by subscribe.ts from the request. */
export interface StreamSpec {
  channel: string
  /** HTTP/1.1: chunked framing; HTTP/1.0: the raw bytes and a close at the end. */
  chunked: boolean
  accepts: MessageFilter | undefined
  encoder: StreamEncoder
  /** The response head, written with the stream's opening bytes. */
  head: string
  /** For the log: the format, framing and filters asked for. */
  details: string
  /** Gap events in-band (see HttpSubscription). */
  gapEvents: boolean
  /** Where the stream starts: the serial the replay starts at (the log's end for none), the id before it, and the gap to tell of first, if any. */
  replay: {start: number; from: string; after?: string; gap?: Gap; through?: string}
  /** Only the backlog: the stream ends once the replay has caught up (`?poll=1`). */
  poll: boolean
}

/**
 * Owns every connection that has become a subscription stream, from the
 * moment it is one to its close: marks it (no request behind it is ever
 * answered), takes it over from Node's HTTP server, starts its
 * subscription on the bus, and cleans up when it closes; ends them all on
 * shutdown.
 */
export class Streams implements Iterable<HttpSubscription> {
  private readonly sockets = new WeakSet<Socket>()
  private readonly condemned = new WeakSet<Socket>()
  private readonly live = new Set<HttpSubscription>()
  /** Messages written to streams now closed, by format: with the open ones' (deliveries()), all since the start. */
  private readonly closedDeliveries: Record<StreamFormat, number> = {multipart: 0, sse: 0, ndjson: 0, raw: 0}
  /** Streams begun since the start, each one a 200 that Node's HTTP server never saw. */
  opened = 0

  constructor(
    private readonly bus: Bus,
    private readonly writer: SocketWriter,
    private readonly logger: Logger,
    /** Unsent bytes past which a replay waits for the reader (--max-pending). */
    private readonly replayHighWater: number,
  ) {}

  /** The connection is a stream: what else arrives on it is never a request to answer. */
  isStream(socket: Socket): boolean {
    return this.sockets.has(socket)
  }

  /**
   * Bytes that can never be answered arrived behind a request still being
   * handled (the parser refused them): should that request become a stream,
   * its connection is closed instead, as a stream's would be.
   */
  condemn(socket: Socket): void {
    this.condemned.add(socket)
  }

  get size(): number {
    return this.live.size
  }

  [Symbol.iterator](): Iterator<HttpSubscription> {
    return this.live.values()
  }

  /**
   * Makes the request's connection a stream. A subscription pipelined
   * behind another request waits until the answer to that one is out and
   * the connection is its own. Node's parser may then still hold bytes of
   * requests behind this one: the connection stays with Node, which hands
   * them to the router, which closes it.
   */
  open(req: IncomingMessage, res: ServerResponse, spec: StreamSpec): void {
    if (this.condemned.has(req.socket)) {
      req.socket.destroy()
      return
    }

    this.sockets.add(req.socket)
    if (res.socket) {
      if (this.start(req.socket, spec)) takeOver(req.socket, req, res)
    } else {
      res.once('socket', () => this.start(req.socket, spec))
    }
  }

  /**
   * Starts the subscription. Kept apart from the request so that what
   * outlives it (the subscription and its close listener) holds nothing of
   * the request or the response. False when the connection is gone already.
   */
  private start(socket: Socket, spec: StreamSpec): boolean {
    if (socket.destroyed) return false
    const subscription = new HttpSubscription(socket, spec.channel, spec.chunked, spec.accepts, spec.encoder, this.writer, peerOf(socket), spec.gapEvents)
    socket.setNoDelay(true)
    // The id it resumed from is the last it had, until a message comes: what a gap event says it had.
    subscription.lastId = spec.replay.after
    subscription.through = spec.replay.through
    subscription.start(spec.head, spec.replay.from, spec.replay.gap)
    // On the bus before the replay starts: what is published meanwhile is in the log, and live delivery skips what the replay wrote.
    if (!spec.poll) this.bus.subscribe(subscription)
    this.live.add(subscription)
    this.opened++
    const log = this.bus.log
    const caughtUp = () => {
      subscription.replaying = false
      if (spec.poll) subscription.end()
    }

    if (spec.replay.start < log.end) {
      subscription.replaying = true
      replay(subscription, log, spec.replay.start, this.replayHighWater, caughtUp, spec.poll ? log.end : undefined)
    } else {
      subscription.lastSerial = log.end - 1
      caughtUp()
    }

    this.logger.log(LogLevel.Subscriptions, 'subscribe', ...this.logged(subscription, spec.details))
    this.onClose(socket, subscription, spec.details, performance.now())
    return true
  }

  /**
   * Its own function, so that the listener's closure holds only these
   * (start's closures share one context with the spec, the response head
   * and all): an idle subscriber keeps the least memory.
   */
  private onClose(socket: Socket, subscription: HttpSubscription, details: string, started: number): void {
    // on, not once: 'close' comes once anyway, and once() would wrap the listener (about 110 bytes more).
    socket.on('close', () => {
      this.bus.unsubscribe(subscription)
      this.live.delete(subscription)
      this.closedDeliveries[subscription.encoder.format] += subscription.received
      if (this.logger.level < LogLevel.Subscriptions) return
      const seconds = Math.round((performance.now() - started) / 100) / 10
      const messages = subscription.received
      const [described, fields] = this.logged(subscription, details)
      this.logger.log(LogLevel.Subscriptions, 'unsubscribe', `${described} after ${plural(messages, 'message')}, ${seconds} s`, {...fields, messages, seconds})
    })
  }

  /** How the log names a subscription, in its text and its fields: made when logged, not kept. */
  private logged(subscription: HttpSubscription, details: string): [string, LogFields] {
    const {peer, channel} = subscription
    const described = `${peer} ${channelLabel(channel)}${details ? ` ${details}` : ''}`
    return [described, {peer, channel, format: subscription.encoder.format, details}]
  }

  /**
   * Messages written to streams since the start, by format: what closed
   * streams had, and what the open ones have had so far. Summed per stream
   * when asked (each counts its own anyway), never counted per message.
   */
  deliveries(): Record<StreamFormat, number> {
    const deliveries = {...this.closedDeliveries}
    for (const subscription of this.live) deliveries[subscription.encoder.format] += subscription.received
    return deliveries
  }

  /** Ends every stream properly (the server stops): a disconnect event where the format has one, its closing bytes, then the end of the connection. */
  endAll(): void {
    for (const subscription of this.live) subscription.end('shutdown')
  }

  /** Closes what is left of them: streams are no longer the HTTP server's to close (see takeover.ts). */
  destroyAll(): void {
    for (const subscription of this.live) subscription.socket.destroy()
  }
}
