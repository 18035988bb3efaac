import type {Socket} from 'node:net'
import {numberedChannel, resolveTarget, type ClientOptions, type Target} from '../client/target.js'
import type {Part} from '../protocol/multipart-parser.js'
import {loopbackSource, openSocket, requestLine} from './connect.js'
import {readsThrough} from './batch-reader.js'
import {nowMicros} from './marker.js'
import {parseHead} from './response-reader.js'
import {streamReaderFor, type StreamReader} from './stream-choice.js'
import {newRead, SubscriptionTally, Window} from './tally.js'
import {messageOf, reasonOf} from '../util/errors.js'

export interface SubscriberPoolOptions extends ClientOptions {
  target: string
  connections: number
  /** Connections opened per second; 0: as fast as they connect. */
  ramp: number
  type?: string
  sender?: string
  /** Connection i subscribes to `<channel>-<i mod N>` (as test-pub --channels N publishes). Default 1: the channel itself. */
  channels?: number
  /** `?format=` of the subscription (msgbus picks its stream format by it: `sse`, `multipart`). */
  format?: string
  /** An Accept header on the subscription request: how other servers are asked for a stream (nchan: `multipart/mixed`, `text/event-stream`). */
  accept?: string
  signal?: AbortSignal
  /** Called for every message on the first connection (test-sub --print), with the channel that connection subscribed to. */
  onMessage?: (part: Part, channel: string) => void
}

const MAX_CONNECTING = 200

/**
 * test-sub's engine: many subscriptions on raw sockets, each read by a
 * SubscriptionStream, checking every message's marker for gaps, duplicates,
 * order and latency. A connection the server drops is reopened, resuming
 * after the last message it had (`Last-Event-ID`), and counted as a
 * reconnect; gap events come in-band (`?gaps=1`) and are counted.
 */
export class SubscriberPool {
  readonly target: Target
  /** Counters since the last interval; totals are kept by the caller. */
  window = new Window()
  connected = 0
  failed = 0
  /** The first few reasons connections failed. */
  readonly reasons: string[] = []
  private readonly sockets = new Set<Socket>()
  private stopping = false
  /** Connections the server dropped that are not back yet: retried until the end, then counted as failed. */
  private down = 0
  private downReason = ''

  constructor(private readonly options: SubscriberPoolOptions) {
    this.target = resolveTarget(options.target, options)
    const params = this.target.url.searchParams
    if (options.type) params.set('type', options.type)
    if (options.sender) params.set('sender', options.sender)
    if (options.format) params.set('format', options.format)
    params.set('gaps', '1')
  }

  /** The subscription connection `index` makes. */
  private targetOf(index: number): Target {
    const channels = this.options.channels ?? 1
    return channels > 1 ? numberedChannel(this.target, index % channels) : this.target
  }

  /** How the subscriptions are read (test-sub's report): TLS ones always through Node. */
  reads(): string {
    return this.target.url.protocol === 'https:' ? 'Node (TLS)' : readsThrough()
  }

  /** Takes the counters of the interval just ended. */
  takeWindow(): Window {
    const window = this.window
    this.window = new Window()
    return window
  }

  private fail(reason: string): void {
    this.failed++
    if (this.reasons.length < 5 && !this.reasons.includes(reason)) this.reasons.push(reason)
  }

  /**
   * Opens one subscription; resolves once its stream is live (or it failed).
   * A reopen (`retryMs` > 0, after the server dropped it) that fails is tried
   * again, backing off to once a second, until the end.
   */
  private open(index: number, tally = new SubscriptionTally(this), retryMs = 0): Promise<void> {
    return new Promise((resolve) => {
      let live = false
      let refused: string | undefined
      let head: Buffer | undefined = Buffer.alloc(0)
      let stream: StreamReader | undefined
      // `data` is a shared read buffer: the head is copied out, the stream reader copies what it keeps.
      const onData = (data: Buffer, end: number): void => {
        newRead()
        if (stream) {
          try {
            stream.write(data, end)
          } catch (error) {
            // A stream we cannot read is a failed connection, not a crash.
            this.fail(`unreadable stream: ${messageOf(error)}`)
            socket.destroy()
          }

          return
        }

        head = Buffer.concat([head!, data.subarray(0, end)])
        const headEnd = head.indexOf('\r\n\r\n')
        if (headEnd < 0) return
        const response = parseHead(head.toString('latin1', 0, headEnd))
        const {onMessage} = this.options
        const channel = this.targetOf(index).channel
        stream = response.status === 200 ? streamReaderFor(response, tally, index === 0 && onMessage ? (part) => onMessage(part, channel) : undefined) : undefined
        if (!stream) {
          refused = `${response.status} ${head.toString('utf8', headEnd + 4).trim().split('\n')[0]}`.trim()
          socket.destroy()
          return
        }

        live = true
        tally.startsAfter(response.headers['msgbus-replay-from'] ?? '')
        this.connected++
        if (retryMs > 0) {
          this.down--
          this.window.reconnects++
        }
        resolve()
        const rest = head.subarray(headEnd + 4)
        head = undefined
        if (rest.length > 0) stream.write(rest, rest.length)
      }

      const socket = openSocket(this.target, {...this.options, ...loopbackSource(this.target, index), batched: true, onData})
      this.sockets.add(socket)
      const lastId = retryMs > 0 ? tally.lastId : undefined
      if (lastId !== undefined) tally.resumed(nowMicros())
      const headers: Record<string, string> = this.options.accept ? {Accept: this.options.accept} : {}
      if (lastId !== undefined) headers['Last-Event-ID'] = lastId
      socket.write(`${requestLine('GET', this.targetOf(index), headers)}\r\n`)
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (!live) refused ??= reasonOf(error)
      })
      socket.on('close', () => {
        this.sockets.delete(socket)
        if (!live) {
          resolve()
          // Closed by stop(), which counted it.
          if (this.stopping) return
          const reason = refused ?? 'closed before the response'
          if (retryMs === 0) {
            this.fail(reason)
          } else {
            this.downReason = reason
            this.reopen(index, tally, Math.min(retryMs * 2, 1000))
          }

          return
        }

        this.connected--
        // The server dropped us mid-run: come back, and count it.
        if (!this.stopping) {
          this.down++
          this.reopen(index, tally, 100)
        }
      })
    })
  }

  private reopen(index: number, tally: SubscriptionTally, retryMs: number): void {
    setTimeout(() => {
      if (!this.stopping) void this.open(index, tally, retryMs)
    }, retryMs)
  }

  /** Opens every connection, `ramp` per second, at most MAX_CONNECTING at a time. */
  async start(): Promise<void> {
    const {connections, ramp, signal} = this.options
    const started = performance.now()
    const pending = new Set<Promise<void>>()
    // Not past the end: a subscription opened after stop() would keep the process alive for ever.
    for (let i = 0; i < connections && !signal?.aborted && !this.stopping; i++) {
      if (ramp > 0) {
        const at = started + (i / ramp) * 1000
        const wait = at - performance.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      }

      if (this.stopping) break
      const opening: Promise<void> = this.open(i).finally(() => pending.delete(opening))
      pending.add(opening)
      if (pending.size >= MAX_CONNECTING) await Promise.race(pending)
    }

    await Promise.all(pending)
  }

  /**
   * Closes every subscription. One the server dropped that is not back, and
   * one still opening (or never opened) at the end, count as failed.
   */
  stop(): void {
    this.stopping = true
    for (let i = 0; i < this.down; i++) this.fail(`dropped and not reopened${this.downReason ? `: ${this.downReason}` : ''}`)
    this.down = 0
    const unopened = this.options.connections - this.connected - this.failed
    for (let i = 0; i < unopened; i++) this.fail('not connected by the end')
    // A reset rather than a FIN (on plain TCP): thousands of connections closed at once would
    // otherwise hold as many loopback ports in TIME_WAIT for a minute, and the next run could find none free.
    const reset = this.target.url.protocol !== 'https:'
    for (const socket of this.sockets) {
      if (reset) socket.resetAndDestroy()
      else socket.destroy()
    }
  }
}
