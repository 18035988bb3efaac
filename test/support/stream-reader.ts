// A subscriber on a raw socket that decodes its stream as it arrives, in
// any format (multipart, SSE, NDJSON, raw), for the history tests: long
// streams (tens of thousands of messages) are parsed incrementally instead
// of being re-read whole at each chunk, as RawClient and Subscription do.
import {once} from 'node:events'
import {connect, type Socket} from 'node:net'
import {Changes, until} from '../../tools/wait.js'

export type Format = 'multipart' | 'sse' | 'ndjson' | 'raw'

/** A message as a stream carries it; raw streams carry the body alone. */
export interface StreamMessage {
  kind: 'message'
  /** Message-ID, the SSE id, or the JSON id; undefined on raw streams. */
  id: string | undefined
  body: string
  channel?: string
  sender?: string | null
  type?: string
}

/** An in-band gap event (SSE `event: gap`, an NDJSON line, a multipart part with `Msgbus-Event: gap`). */
export interface StreamGap {
  kind: 'gap'
  reason: string
  after: string | null
  from: string
  skipped?: number
  /** Exactly what arrived: the SSE event's lines, the NDJSON line, or the part's headers. */
  wire: string
}

export type StreamEvent = StreamMessage | StreamGap

export interface OpenOptions {
  format?: Format
  headers?: Record<string, string>
  /** HTTP/1.0 (no chunking; the server closes at the end) instead of 1.1. */
  http10?: boolean
  /** Bytes to keep whole, for the tests that compare streams byte for byte (default: not kept). */
  keepBytes?: boolean
}

/** `?format=` for a format (multipart is the default and needs none). */
export function withFormat(path: string, format: Format): string {
  if (format === 'multipart') return path
  return `${path}${path.includes('?') ? '&' : '?'}format=${format}`
}

/**
 * One HTTP request for a stream and its answer, decoded. `events` grows as
 * the stream arrives; `status` and `headers` once the head is in; `ended`
 * when the chunked body's last chunk came, `closed` when the connection
 * closed.
 */
export class StreamReader {
  status = 0
  headers: Record<string, string> = {}
  /** The head as it arrived (status line and header lines). */
  head = ''
  readonly events: StreamEvent[] = []
  /** The disconnect events (the server's last word before it cuts the stream), kept apart from the messages and gaps. */
  readonly disconnects: Array<Record<string, unknown>> = []
  /** The body's payload bytes (chunk framing removed), when `keepBytes` was asked for. */
  payload: Buffer[] = []
  /** The body bytes exactly as they arrived, chunk framing and all, when `keepBytes` was asked for. */
  raw: Buffer[] = []
  ended = false
  closed = false
  /** The multipart close delimiter came. */
  closeDelimiter = false
  /** Called with each event as it is decoded. */
  onEvent: ((event: StreamEvent) => void) | undefined
  /** A body that is not a stream (an error answer), as text. */
  errorBody = ''
  readonly changes = new Changes()
  private buffered = Buffer.alloc(0)
  private inHead = true
  private chunked = false
  private chunkLeft = -1
  private text = Buffer.alloc(0)
  private boundary = ''
  private multipartOpened = false
  private format: Format
  private readonly keepBytes: boolean

  private constructor(
    readonly socket: Socket,
    options: OpenOptions,
  ) {
    this.format = options.format ?? 'multipart'
    this.keepBytes = options.keepBytes ?? false
    socket.on('data', (chunk: Buffer) => {
      this.take(chunk)
      this.changes.notify()
    })
    socket.on('close', () => {
      this.closed = true
      this.changes.notify()
    })
    socket.on('error', () => {})
  }

  static async open(port: number, path: string, options: OpenOptions = {}): Promise<StreamReader> {
    const socket = connect(port, '127.0.0.1')
    const reader = new StreamReader(socket, options)
    await once(socket, 'connect')
    const version = options.http10 ? '1.0' : '1.1'
    const lines = Object.entries({Host: 'x', ...options.headers}).map(([name, value]) => `${name}: ${value}\r\n`)
    socket.write(`GET ${withFormat(path, reader.format)} HTTP/${version}\r\n${lines.join('')}\r\n`)
    return reader
  }

  get messages(): StreamMessage[] {
    return this.events.filter((event): event is StreamMessage => event.kind === 'message')
  }

  get gaps(): StreamGap[] {
    return this.events.filter((event): event is StreamGap => event.kind === 'gap')
  }

  ids(): string[] {
    return this.messages.map((message) => message.id!)
  }

  bodies(): string[] {
    return this.messages.map((message) => message.body)
  }

  /** The body bytes so far, after the head (chunk framing removed), when `keepBytes` was asked for. */
  bytes(): Buffer {
    return Buffer.concat(this.payload)
  }

  /** Waits for the head. */
  async answered(timeoutMs = 5000): Promise<this> {
    await this.until(() => this.status > 0, 'the answer', timeoutMs)
    return this
  }

  /** Waits until `test` holds; fails on timeout, or when the connection closed first. */
  async until(test: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    await until(test, () => `${what} (status ${this.status}, ${this.events.length} events, last ${JSON.stringify(this.events.at(-1))}, closed ${this.closed})`, {
      timeoutMs,
      everyMs: 50,
      changes: this.changes,
      stop: () => this.closed && !test() && 'the connection closed',
    })
  }

  async untilMessages(count: number, timeoutMs = 10_000): Promise<StreamMessage[]> {
    await this.until(() => this.messages.length >= count, `${count} messages`, timeoutMs)
    return this.messages
  }

  /** Waits for the close; the server ends the stream. */
  async untilClosed(timeoutMs = 10_000): Promise<void> {
    await until(() => this.closed, () => `the connection to close (${this.events.length} events)`, {timeoutMs, everyMs: 50, changes: this.changes})
  }

  /** Stops reading: the kernel's buffers fill, then the server's. */
  pause(): void {
    this.socket.pause()
  }

  resume(): void {
    this.socket.resume()
  }

  close(): void {
    this.socket.destroy()
  }

  private push(event: StreamEvent): void {
    this.events.push(event)
    this.onEvent?.(event)
  }

  private take(chunk: Buffer): void {
    if (this.inHead) {
      this.buffered = Buffer.concat([this.buffered, chunk])
      const end = this.buffered.indexOf('\r\n\r\n')
      if (end < 0) return
      this.head = this.buffered.subarray(0, end).toString('latin1')
      const [statusLine, ...lines] = this.head.split('\r\n')
      this.status = Number(statusLine.split(' ')[1])
      for (const line of lines) {
        const colon = line.indexOf(':')
        this.headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
      }

      this.chunked = /chunked/i.test(this.headers['transfer-encoding'] ?? '')
      const type = this.headers['content-type'] ?? ''
      this.boundary = /boundary=([^\s;]+)/.exec(type)?.[1] ?? ''
      if (this.status === 200 && !this.boundary && type.startsWith('multipart/')) throw new Error('no boundary')
      if (this.status === 200) {
        if (type.startsWith('text/event-stream')) this.format = 'sse'
        else if (type.startsWith('application/x-ndjson')) this.format = 'ndjson'
        else if (type.startsWith('text/plain')) this.format = 'raw'
        else if (type.startsWith('multipart/')) this.format = 'multipart'
      }

      this.inHead = false
      chunk = this.buffered.subarray(end + 4)
      this.buffered = Buffer.alloc(0)
    }

    if (this.keepBytes) this.raw.push(chunk)
    if (this.chunked) this.dechunk(chunk)
    else this.body(chunk)
  }

  /** Removes the chunk framing as it arrives. */
  private dechunk(chunk: Buffer): void {
    let data = this.buffered.length > 0 ? Buffer.concat([this.buffered, chunk]) : chunk
    this.buffered = Buffer.alloc(0)
    while (data.length > 0 && !this.ended) {
      if (this.chunkLeft < 0) {
        const lineEnd = data.indexOf('\r\n')
        if (lineEnd < 0) break
        const size = Number.parseInt(data.subarray(0, lineEnd).toString('latin1'), 16)
        data = data.subarray(lineEnd + 2)
        if (size === 0) {
          this.ended = true
          return
        }

        this.chunkLeft = size + 2
      }

      const take = Math.min(this.chunkLeft, data.length)
      const piece = data.subarray(0, take)
      this.chunkLeft -= take
      // The last two bytes of a chunk are its CRLF.
      const payloadEnd = this.chunkLeft >= 2 ? piece.length : piece.length - (2 - this.chunkLeft)
      if (payloadEnd > 0) this.body(piece.subarray(0, payloadEnd))
      data = data.subarray(take)
      if (this.chunkLeft === 0) this.chunkLeft = -1
    }

    if (data.length > 0 && !this.ended) this.buffered = Buffer.from(data)
  }

  private body(payload: Buffer): void {
    if (this.keepBytes) this.payload.push(Buffer.from(payload))
    if (this.status !== 200) {
      this.errorBody += payload.toString('utf8')
      return
    }

    this.text = this.text.length > 0 ? Buffer.concat([this.text, payload]) : Buffer.from(payload)
    if (this.format === 'ndjson') this.ndjson()
    else if (this.format === 'sse') this.sse()
    else if (this.format === 'raw') this.rawLines()
    else this.multipart()
  }

  private ndjson(): void {
    let at = 0
    for (let newline = this.text.indexOf(10, at); newline >= 0; newline = this.text.indexOf(10, at)) {
      const line = this.text.subarray(at, newline).toString('utf8')
      at = newline + 1
      const json = JSON.parse(line) as Record<string, unknown>
      if (json.event === 'gap') this.push(gapOf(json, line))
      else if (json.event === 'disconnect') this.disconnects.push(json)
      else this.push({kind: 'message', id: json.id as string, body: json.body as string, channel: json.channel as string, sender: json.sender as string | null, type: json.type as string})
    }

    this.text = this.text.subarray(at)
  }

  private sse(): void {
    let at = 0
    for (let end = this.text.indexOf('\n\n', at); end >= 0; end = this.text.indexOf('\n\n', at)) {
      const block = this.text.subarray(at, end).toString('utf8')
      at = end + 2
      const fields: Record<string, string> = {}
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue
        const colon = line.indexOf(':')
        fields[line.slice(0, colon)] = line.slice(colon + 2)
      }

      if (fields.data === undefined) continue
      const json = JSON.parse(fields.data) as Record<string, unknown>
      if (fields.event === 'gap') {
        if (fields.id !== undefined) throw new Error(`a gap event with an id line: ${block}`)
        this.push(gapOf(json, block))
      } else if (fields.event === 'disconnect') {
        if (fields.id !== undefined) throw new Error(`a disconnect event with an id line: ${block}`)
        this.disconnects.push(json)
      } else {
        if (fields.event !== 'message' || fields.id !== json.id) throw new Error(`not a message event: ${block}`)
        this.push({kind: 'message', id: fields.id, body: json.body as string, channel: json.channel as string, sender: json.sender as string | null, type: json.type as string})
      }
    }

    this.text = this.text.subarray(at)
  }

  private rawLines(): void {
    let at = 0
    for (let newline = this.text.indexOf(10, at); newline >= 0; newline = this.text.indexOf(10, at)) {
      this.push({kind: 'message', id: undefined, body: this.text.subarray(at, newline).toString('utf8')})
      at = newline + 1
    }

    this.text = this.text.subarray(at)
  }

  private multipart(): void {
    const opening = `--${this.boundary}\r\n`
    const delimiter = `\r\n--${this.boundary}\r\n`
    if (!this.multipartOpened) {
      if (this.text.length < opening.length) return
      if (this.text.subarray(0, opening.length).toString('latin1') !== opening) throw new Error('the stream does not open with the delimiter')
      this.text = this.text.subarray(opening.length)
      this.multipartOpened = true
    }

    for (;;) {
      if (this.text.subarray(0, 4 + this.boundary.length).toString('latin1') === `\r\n--${this.boundary}`) {
        if (this.text.includes(`\r\n--${this.boundary}--\r\n`)) this.closeDelimiter = true
        return
      }

      const headEnd = this.text.indexOf('\r\n\r\n')
      if (headEnd < 0) return
      const headText = this.text.subarray(0, headEnd).toString('utf8')
      const headers: Record<string, string> = {}
      for (const line of headText.split('\r\n')) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
      }

      const length = Number(headers['content-length'])
      const bodyStart = headEnd + 4
      if (this.text.length < bodyStart + length + delimiter.length) return
      const body = this.text.subarray(bodyStart, bodyStart + length)
      const after = this.text.subarray(bodyStart + length, bodyStart + length + delimiter.length).toString('latin1')
      if (after !== delimiter) throw new Error(`a part not followed by the delimiter: ${JSON.stringify(after)}`)
      this.text = this.text.subarray(bodyStart + length + delimiter.length)
      if (headers['msgbus-event'] === 'gap') {
        if (headers['message-id'] !== undefined) throw new Error(`a gap part with a Message-ID: ${headText}`)
        this.push(gapOf(JSON.parse(body.toString('utf8')) as Record<string, unknown>, headText))
      } else if (headers['msgbus-event'] === 'disconnect') {
        this.disconnects.push(JSON.parse(body.toString('utf8')) as Record<string, unknown>)
      } else {
        const channel = headers['content-location']?.replace(/^\/msgbus\//, '')
        this.push({kind: 'message', id: headers['message-id'], body: body.toString('utf8'), channel, sender: headers.from ?? null, type: headers['content-type']})
      }
    }
  }
}

function gapOf(json: Record<string, unknown>, wire: string): StreamGap {
  const keys = Object.keys(json)
  const expected = ['event', 'reason', 'after', 'from', ...(json.skipped === undefined ? [] : ['skipped'])]
  if (keys.join() !== expected.join()) throw new Error(`a gap event's keys: ${keys.join()}`)
  return {kind: 'gap', reason: json.reason as string, after: json.after as string | null, from: json.from as string, skipped: json.skipped as number | undefined, wire}
}
