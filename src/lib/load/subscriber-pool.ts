import type {Socket} from 'node:net'
import {resolveTarget, type ClientOptions, type Target} from '../client/target.js'
import {ChunkedDecoder} from '../protocol/chunked-decoder.js'
import {boundaryOf, MultipartParser, type Part} from '../protocol/multipart-parser.js'
import {loopbackSource, openSocket, requestLine} from './connect.js'
import {LatencyHistogram} from './latency.js'
import {nowMicros, readMarker} from './marker.js'
import {parseHead} from './response-reader.js'

export interface SubscriberPoolOptions extends ClientOptions {
  target: string
  connections: number
  /** Connections opened per second; 0: as fast as they connect. */
  ramp: number
  type?: string
  sender?: string
  signal?: AbortSignal
  /** Called for every message on the first connection (test-sub --print). */
  onMessage?: (part: Part) => void
}

/** Counters over a window (an interval, or the whole run). */
export class Window {
  received = 0
  bytes = 0
  lost = 0
  duplicates = 0
  outOfOrder = 0
  reconnects = 0
  readonly latency = new LatencyHistogram()

  add(other: Window): void {
    this.received += other.received
    this.bytes += other.bytes
    this.lost += other.lost
    this.duplicates += other.duplicates
    this.outOfOrder += other.outOfOrder
    this.reconnects += other.reconnects
    this.latency.add(other.latency)
  }
}

/** Per connection and publisher: the last sequence number seen, and the ones skipped (lost, unless they come late). */
interface Sequence {
  last: number
  missing: Set<number>
}

/** Missing sequence numbers remembered per publisher, to tell late from duplicate; older gaps just stay lost. */
const MAX_MISSING = 10_000

const MAX_CONNECTING = 200

/**
 * test-sub's engine: many subscriptions on raw sockets, each read by the
 * library's chunked decoder and multipart parser, checking every message's
 * marker for gaps, duplicates, order and latency. A connection the server
 * drops is reopened and counted as a reconnect.
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
  private open(index: number, sequences = new Map<number, Sequence>(), retryMs = 0): Promise<void> {
    return new Promise((resolve) => {
      let live = false
      let refused: string | undefined
      let head: Buffer | undefined = Buffer.alloc(0)
      let feed: ((chunk: Buffer) => void) | undefined
      // `chunk` is a view into a shared read buffer: the head is copied out, the parser copies what it keeps.
      const onData = (chunk: Buffer): void => {
        if (feed) {
          try {
            feed(chunk)
          } catch (error) {
            // A stream we cannot read is a failed connection, not a crash.
            this.fail(`unreadable stream: ${(error as Error).message}`)
            socket.destroy()
          }

          return
        }

        head = Buffer.concat([head!, chunk])
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        const response = parseHead(head.toString('latin1', 0, end))
        const boundary = boundaryOf(response.headers['content-type'])
        if (response.status !== 200 || !boundary) {
          refused = `${response.status} ${head.toString('utf8', end + 4).trim().split('\n')[0]}`.trim()
          socket.destroy()
          return
        }

        live = true
        this.connected++
        if (retryMs > 0) {
          this.down--
          this.window.reconnects++
        }
        resolve()
        const parser = new MultipartParser(boundary, (part) => this.onPart(part, sequences, index), {transientInput: true})
        const decoder = response.headers['transfer-encoding'] === 'chunked' ? new ChunkedDecoder((data) => parser.write(data)) : undefined
        feed = decoder ? (data) => decoder.write(data) : (data) => parser.write(data)
        const rest = head.subarray(end + 4)
        head = undefined
        if (rest.length > 0) feed(rest)
      }

      const socket = openSocket(this.target, {...this.options, ...loopbackSource(this.target, index), onData})
      this.sockets.add(socket)
      socket.write(`${requestLine('GET', this.target)}\r\n`)
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (!live) refused ??= error.code ?? error.message
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
            this.reopen(index, sequences, Math.min(retryMs * 2, 1000))
          }

          return
        }

        this.connected--
        // The server dropped us mid-run: come back, and count it.
        if (!this.stopping) {
          this.down++
          this.reopen(index, sequences, 100)
        }
      })
    })
  }

  private reopen(index: number, sequences: Map<number, Sequence>, retryMs: number): void {
    setTimeout(() => {
      if (!this.stopping) void this.open(index, sequences, retryMs)
    }, retryMs)
  }

  private onPart(part: Part, sequences: Map<number, Sequence>, index: number): void {
    const window = this.window
    window.received++
    window.bytes += part.body.length
    if (index === 0) this.options.onMessage?.(part)
    const marker = readMarker(part.headers['content-type'])
    if (!marker) return
    window.latency.record(nowMicros() - marker.sentMicros)
    const sequence = sequences.get(marker.publisher)
    if (!sequence) {
      sequences.set(marker.publisher, {last: marker.seq, missing: new Set()})
      return
    }

    if (marker.seq === sequence.last + 1) {
      sequence.last = marker.seq
    } else if (marker.seq > sequence.last) {
      for (let seq = sequence.last + 1; seq < marker.seq && sequence.missing.size < MAX_MISSING; seq++) sequence.missing.add(seq)
      window.lost += marker.seq - sequence.last - 1
      sequence.last = marker.seq
    } else if (sequence.missing.delete(marker.seq)) {
      window.outOfOrder++
      window.lost--
    } else {
      window.duplicates++
    }
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
