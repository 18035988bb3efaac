import {randomInt} from 'node:crypto'
import type {Socket} from 'node:net'
import {numberedChannel, resolveTarget, type ClientOptions, type Target} from '../client/target.js'
import {loopbackSource, openSocket, requestLine} from './connect.js'
import {markerText, nowMicros, withMarker, type LoadMarker} from './marker.js'
import {ResponseReader} from './response-reader.js'

export interface LoadPublisherOptions extends ClientOptions {
  target: string
  /** The body of every message; default `<h1>hello world N</h1>`. */
  body?: Buffer
  /** Pad (or cut) bodies to this many bytes. */
  size?: number
  type: string
  /** Where each message's marker goes: a parameter of its type (default), or the start of its body (for streams that carry no type, as nchan's SSE). */
  marker?: 'type' | 'body'
  /** Messages per second over all connections; 0: as fast as the server accepts them. */
  rate: number
  connections: number
  /** Requests in flight per connection. */
  pipeline: number
  durationSeconds?: number
  count?: number
  /** Spread the messages over channels `<channel>-0` to `<channel>-<N-1>`, in turn. Default 1: the channel itself. */
  channels?: number
  signal?: AbortSignal
}

/** Markers name a connection's stream to one channel by a number under this, added to the run's base. */
const STREAMS_PER_RUN = 65_536

export interface PublisherTotals {
  published: number
  errors: number
  /** The first few error reasons, for the report. */
  reasons: string[]
}

interface Lane {
  index: number
  /** This connection's identity in markers, unique to this run (see LoadPublisher.id). */
  publisher: number
  /** Messages sent on this connection to each channel: each marker's seq, so test-sub sees 0, 1, 2... per publisher. */
  sent: number[]
  socket: Socket
  inFlight: number
  open: boolean
}

/**
 * test-pub's engine: keep-alive HTTP/1.1 connections on raw sockets, each
 * with up to `pipeline` POSTs in flight. With a rate, message n is due at
 * start + n / rate (an absolute schedule, so pacing does not drift); at rate
 * 0 every answer makes room for the next. Each message's type carries its
 * publisher, sequence number and send time (see marker.ts).
 */
export class LoadPublisher {
  readonly totals: PublisherTotals = {published: 0, errors: 0, reasons: []}
  /** Messages sent (answered or not). */
  sent = 0
  private readonly target: Target
  private readonly lanes: Lane[] = []
  private started = 0
  private stopping = false
  private timer: NodeJS.Timeout | undefined
  private done!: () => void
  private readonly finished = new Promise<void>((resolve) => (this.done = resolve))
  private next = 0
  private ended = false
  /**
   * Markers name connection i of this run as id + i: a random base, so two
   * test-pub runs (one after the other, or at once) never look to test-sub
   * like one publisher starting over (duplicates) or skipping (loss).
   */
  private readonly id = randomInt(2 ** 32) * STREAMS_PER_RUN
  /** With a rate and a duration, the messages due before the end: message n is due at n / rate. */
  private readonly scheduled: number
  /** Where message n goes: targets[n % targets.length]. */
  private readonly targets: Target[]

  constructor(private readonly options: LoadPublisherOptions) {
    this.target = resolveTarget(options.target, options)
    if (this.target.channel === '') throw new Error(`${this.target.display}: name a channel to publish to`)
    const channels = options.channels ?? 1
    if (options.connections * channels > STREAMS_PER_RUN) throw new Error(`--connections × --channels is at most ${STREAMS_PER_RUN}`)
    this.targets = channels > 1 ? Array.from({length: channels}, (_, index) => numberedChannel(this.target, index)) : [this.target]
    const {rate, durationSeconds} = options
    this.scheduled = rate > 0 && durationSeconds !== undefined ? Math.ceil(durationSeconds * rate) : Infinity
  }

  private body(seq: number, marker: LoadMarker | undefined): Buffer {
    let body = this.options.body ?? Buffer.from(`<h1>hello world ${seq}</h1>`)
    const prefix = marker && Buffer.from(`${markerText(marker)} `, 'latin1')
    if (prefix) body = Buffer.concat([prefix, body])
    const size = this.options.size === undefined || !prefix ? this.options.size : Math.max(this.options.size, prefix.length)
    if (size === undefined || size === body.length) return body
    if (size < body.length) return body.subarray(0, size)
    return Buffer.concat([body, Buffer.alloc(size - body.length, 0x20)])
  }

  private async connect(index: number): Promise<Lane> {
    const reader = new ResponseReader((head, text) => {
      lane.inFlight--
      // msgbus answers 204; nginx+nchan 201 (subscribers got it) or 202 (none there).
      if (head.status >= 200 && head.status < 300) this.totals.published++
      else this.fail(`${head.status} ${text.trim()}`)
      this.pump(lane)
    })
    const socket = openSocket(this.target, {...this.options, ...loopbackSource(this.target, index), onData: (data, end) => reader.write(data.subarray(0, end))})
    const lane: Lane = {index, publisher: this.id + index * this.targets.length, sent: this.targets.map(() => 0), socket, inFlight: 0, open: false}
    socket.on('close', () => {
      lane.open = false
      if (lane.inFlight > 0) this.fail(`connection closed with ${lane.inFlight} messages unanswered`, lane.inFlight)
      lane.inFlight = 0
      this.checkDone()
    })
    await new Promise<void>((resolve, reject) => {
      socket.once(this.target.url.protocol === 'https:' ? 'secureConnect' : 'connect', () => resolve())
      socket.once('error', reject)
    })
    socket.on('error', () => {})
    lane.open = true
    return lane
  }

  private fail(reason: string, count = 1): void {
    this.totals.errors += count
    if (this.totals.reasons.length < 5 && !this.totals.reasons.includes(reason)) this.totals.reasons.push(reason)
  }

  private send(lane: Lane): void {
    const channel = this.sent % this.targets.length
    const marker = {publisher: lane.publisher + channel, seq: lane.sent[channel]++, sentMicros: nowMicros()}
    const inBody = this.options.marker === 'body'
    const body = this.body(this.sent++, inBody ? marker : undefined)
    const type = inBody ? this.options.type : withMarker(this.options.type, marker)
    lane.inFlight++
    lane.socket.write(
      Buffer.concat([
        Buffer.from(`${requestLine('POST', this.targets[channel])}Content-Type: ${type}\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1'),
        body,
      ]),
    )
  }

  private get exhausted(): boolean {
    return this.stopping || (this.options.count !== undefined && this.sent >= this.options.count)
  }

  /** At rate 0: keep each connection's pipeline full. */
  private pump(lane: Lane): void {
    if (this.options.rate > 0) return this.checkDone()
    while (lane.open && lane.inFlight < this.options.pipeline && !this.exhausted) this.send(lane)
    this.checkDone()
  }

  /** With a rate: send what is due by now, then sleep until the next is. */
  private tick = (): void => {
    const {rate, pipeline} = this.options
    const due = Math.min(Math.floor(((performance.now() - this.started) / 1000) * rate) + 1, this.scheduled)
    while (this.sent < due && !this.exhausted) {
      const lane = this.pickLane(pipeline)
      if (!lane) break
      this.send(lane)
    }

    if (this.exhausted) return this.checkDone()
    // All sent that is due before the end: the deadline stops the run.
    if (this.sent >= this.scheduled) return
    const nextAt = this.started + (this.sent / rate) * 1000
    this.timer = setTimeout(this.tick, Math.max(0, nextAt - performance.now()))
  }

  private pickLane(pipeline: number): Lane | undefined {
    for (let i = 0; i < this.lanes.length; i++) {
      const lane = this.lanes[(this.next + i) % this.lanes.length]
      if (lane.open && lane.inFlight < pipeline) {
        this.next = (this.next + i + 1) % this.lanes.length
        return lane
      }
    }

    return undefined
  }

  private checkDone(): void {
    const idle = this.lanes.every((lane) => lane.inFlight === 0 || !lane.open)
    const allClosed = this.lanes.every((lane) => !lane.open)
    // The server closing every connection (it stopped, or refused and hung up) ends the run early: an error, not a quiet exit.
    if (allClosed && !this.exhausted && !this.ended) this.fail('the server closed every connection before the end')
    if ((this.exhausted && idle) || allClosed) {
      this.ended = true
      this.done()
    }
  }

  /** Publishes until the count, the duration or the signal ends it; resolves once every answer is in. */
  async run(): Promise<PublisherTotals & {durationSeconds: number}> {
    const {connections, durationSeconds, signal} = this.options
    for (let i = 0; i < connections; i++) this.lanes.push(await this.connect(i))
    this.started = performance.now()
    const stop = () => {
      this.stopping = true
      clearTimeout(this.timer)
      this.checkDone()
    }

    signal?.addEventListener('abort', stop)
    const deadline = durationSeconds === undefined ? undefined : setTimeout(stop, durationSeconds * 1000)
    if (this.options.rate > 0) this.tick()
    else for (const lane of this.lanes) this.pump(lane)
    await this.finished
    clearTimeout(deadline)
    clearTimeout(this.timer)
    const elapsed = (performance.now() - this.started) / 1000
    for (const lane of this.lanes) lane.socket.end()
    return {...this.totals, durationSeconds: elapsed}
  }
}
