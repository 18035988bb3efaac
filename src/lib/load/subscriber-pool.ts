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

  /** Opens one subscription; resolves once its stream is live (or it failed). */
  private open(index: number, sequences = new Map<number, Sequence>(), reconnect = false): Promise<void> {
    return new Promise((resolve) => {
      const socket = openSocket(this.target, {...this.options, ...loopbackSource(this.target, index)})
      this.sockets.add(socket)
      let live = false
      let head: Buffer | undefined = Buffer.alloc(0)
      let feed: ((chunk: Buffer) => void) | undefined

      socket.write(`${requestLine('GET', this.target)}\r\n`)
      socket.on('data', (chunk: Buffer) => {
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
          this.fail(`${response.status} ${head.toString('utf8', end + 4).trim().split('\n')[0]}`.trim())
          socket.destroy()
          return
        }

        live = true
        this.connected++
        if (reconnect) this.window.reconnects++
        resolve()
        const parser = new MultipartParser(boundary, (part) => this.onPart(part, sequences, index))
        const decoder = response.headers['transfer-encoding'] === 'chunked' ? new ChunkedDecoder((data) => parser.write(data)) : undefined
        feed = decoder ? (data) => decoder.write(data) : (data) => parser.write(data)
        const rest = head.subarray(end + 4)
        head = undefined
        if (rest.length > 0) feed(rest)
      })
      socket.on('error', (error: NodeJS.ErrnoException) => {
        if (!live) this.fail(error.code ?? error.message)
      })
      socket.on('close', () => {
        this.sockets.delete(socket)
        if (!live) {
          resolve()
          return
        }

        this.connected--
        // The server dropped us mid-run: come back, and count it.
        if (!this.stopping) setTimeout(() => void this.open(index, sequences, true), 100)
      })
    })
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
    for (let i = 0; i < connections && !signal?.aborted; i++) {
      if (ramp > 0) {
        const at = started + (i / ramp) * 1000
        const wait = at - performance.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
      }

      const opening: Promise<void> = this.open(i).finally(() => pending.delete(opening))
      pending.add(opening)
      if (pending.size >= MAX_CONNECTING) await Promise.race(pending)
    }

    await Promise.all(pending)
  }

  stop(): void {
    this.stopping = true
    for (const socket of this.sockets) socket.destroy()
  }
}
