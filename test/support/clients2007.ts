// The 2007 msgbus clients, as small readers that send the exact bytes each
// one sent and read the answer the way it read it (from their public
// source; see docs/protocol.md, "The 2007 clients"). Written independently
// of the server's encoders, so a test with them checks the bytes, not our
// own idea of them.
import type {BusServer} from '../../src/lib/index.js'
import {dechunk, portOf, RawClient} from './harness.js'

/** What a 2007 client hands its user for one message. */
export interface Received2007 {
  channel: string
  type: string
  sender: string | undefined
  body: Buffer
}

/**
 * libevent 1.x's evbuffer_readline: a line ends at the first `\r` or `\n`;
 * when the other one of the pair comes right after, it is taken too (so
 * `\n\r` is one line end, and after a bare `\n` a `\r` that starts the next
 * bytes is swallowed).
 */
export function evbufferReadline(buffer: Buffer): {line: string; rest: Buffer} | undefined {
  let i = 0
  while (i < buffer.length && buffer[i] !== 0x0d && buffer[i] !== 0x0a) i++
  if (i === buffer.length) return undefined
  const line = buffer.subarray(0, i).toString('latin1')
  const first = buffer[i]
  const second = buffer[i + 1]
  const drain = i < buffer.length - 1 && (second === 0x0d || second === 0x0a) && second !== first ? i + 2 : i + 1
  return {line, rest: buffer.subarray(drain)}
}

/**
 * libevmsg's __subscribe_cb on one HTTP chunk: header lines up to an empty
 * line (only Content-Type, From and Content-Location kept), then the body is
 * every byte before the first `--<boundary>` in what is left. A chunk
 * without the delimiter or without Content-Type yields nothing.
 */
export function libevmsgChunk(chunk: Buffer, boundary: string, subscribed: string): Received2007 | undefined {
  const headers = new Map<string, string>()
  let rest = chunk
  for (;;) {
    const read = evbufferReadline(rest)
    if (read === undefined) break
    rest = read.rest
    if (read.line === '') break
    const colon = read.line.indexOf(':')
    if (colon < 0) continue
    const name = read.line.slice(0, colon).toLowerCase()
    // strsep on ':', then strspn(" "): leading spaces go, nothing else.
    if (name === 'content-type' || name === 'from' || name === 'content-location') headers.set(name, read.line.slice(colon + 1).replace(/^ +/, ''))
  }

  const at = rest.indexOf(`--${boundary}`, 0, 'latin1')
  const type = headers.get('content-type')
  if (at < 0 || type === undefined) return undefined
  let channel = subscribed
  if (channel === '') {
    const location = headers.get('content-location') ?? ''
    channel = location.startsWith('/msgbus/') ? location.slice(8) : location
  }

  return {channel, type, sender: headers.get('from'), body: Buffer.from(rest.subarray(0, at))}
}

/** The header block of a response, and the bytes after it. */
function splitHead(data: Buffer): {status: number; headers: Map<string, string>; body: Buffer} | undefined {
  const end = data.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n')
  const headers = new Map<string, string>()
  for (const line of lines) {
    const colon = line.indexOf(':')
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim())
  }

  return {status: Number(statusLine.split(' ')[1]), headers, body: data.subarray(end + 4)}
}

/**
 * libevent 1.x's chunked reader: a size line (empty lines skipped, a chunk
 * extension after a space allowed), then that many bytes handed on as one
 * chunk. Returns the whole chunks so far, and whether the last one came.
 */
export function evhttpChunks(body: Buffer): {chunks: Buffer[]; ended: boolean} {
  const chunks: Buffer[] = []
  let rest = body
  for (;;) {
    const read = evbufferReadline(rest)
    if (read === undefined) return {chunks, ended: false}
    if (read.line === '') {
      rest = read.rest
      continue
    }

    const size = Number.parseInt(read.line, 16)
    if (!/^[\da-f]+(?: .*)?$/i.test(read.line)) throw new Error(`libevent could not read the chunk size ${JSON.stringify(read.line)}`)
    if (size === 0) return {chunks, ended: true}
    if (read.rest.length < size) return {chunks, ended: false}
    chunks.push(read.rest.subarray(0, size))
    rest = read.rest.subarray(size)
  }
}

/** The boundary as libevmsg takes it: everything after the first `=` of the Content-Type. */
function libevmsgBoundary(contentType: string): string {
  return contentType.slice(contentType.indexOf('=') + 1)
}

/**
 * A libevmsg subscriber (test-sub, msgdump.py, msgchat.py): the request
 * evmsg_subscribe makes (always `type=` and `sender=`, `*` when not given),
 * over HTTP/1.1, its answer read chunk by chunk as libevmsg reads it.
 */
export class LibevmsgSubscriber {
  private constructor(
    readonly client: RawClient,
    private readonly channel: string,
  ) {}

  /** The exact bytes evhttp_make_request sends for evmsg_subscribe(channel, type, sender). */
  static request(channel: string, options: {host?: string; type?: string; sender?: string; auth?: string} = {}): string {
    const encode = (text: string) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    const uri = `/msgbus/${encode(channel)}?type=${encode(options.type ?? '*')}&sender=${encode(options.sender ?? '*')}`
    const auth = options.auth === undefined ? '' : `Authorization: Basic ${Buffer.from(options.auth).toString('base64')}\r\n`
    return `GET ${uri} HTTP/1.1\r\nHost: ${options.host ?? '127.0.0.1'}\r\nUser-Agent: libevmsg\r\n${auth}\r\n`
  }

  static async open(server: BusServer, channel: string, options: {type?: string; sender?: string; auth?: string; query?: string} = {}): Promise<LibevmsgSubscriber> {
    let request = LibevmsgSubscriber.request(channel, options)
    if (options.query) request = request.replace(' HTTP/1.1', `&${options.query} HTTP/1.1`)
    const client = await RawClient.open(portOf(server), request)
    const subscriber = new LibevmsgSubscriber(client, channel)
    await client.until(() => subscriber.chunks().length > 0, 5000, 'the stream to open')
    return subscriber
  }

  get status(): number {
    return splitHead(this.client.data)?.status ?? 0
  }

  get boundary(): string {
    return libevmsgBoundary(splitHead(this.client.data)!.headers.get('content-type')!)
  }

  chunks(): Buffer[] {
    const head = splitHead(this.client.data)
    return head ? evhttpChunks(head.body).chunks : []
  }

  /** What the callback was called with, chunk by chunk. */
  messages(): Received2007[] {
    const boundary = this.boundary
    return this.chunks().flatMap((chunk) => libevmsgChunk(chunk, boundary, this.channel) ?? [])
  }

  async waitMessages(count: number, timeoutMs = 5000): Promise<Received2007[]> {
    await this.client.until(() => this.messages().length >= count, timeoutMs, `${count} messages for libevmsg`)
    return this.messages()
  }

  close(): void {
    this.client.close()
  }
}

/** Python's file.readline on bytes: up to and including the first `\n`, or all that is left. */
function readline(data: Buffer, at: number): {line: string; next: number} | undefined {
  const end = data.indexOf(0x0a, at)
  if (end < 0) return undefined
  return {line: data.subarray(at, end + 1).toString('latin1'), next: end + 1}
}

/**
 * msgdump2.py's loop over a stream: `assert f.readline().strip() ==
 * boundary`, the part headers as httplib.HTTPMessage reads them (up to a
 * line that is `\r\n` or `\n`), then `f.read(int(msg['content-length']))`.
 * Returns the messages read, and the line where the assert failed, if one did.
 */
export function readLikeMsgdump2(stream: Buffer, boundary: string, subscribed: string): {messages: Received2007[]; failed?: string} {
  const messages: Received2007[] = []
  let at = 0
  for (;;) {
    const delimiter = readline(stream, at)
    if (delimiter === undefined) return {messages}
    if (delimiter.line.trim() !== `--${boundary}`) return {messages, failed: delimiter.line}
    at = delimiter.next
    const headers = new Map<string, string>()
    let complete = false
    for (;;) {
      const line = readline(stream, at)
      if (line === undefined) break
      at = line.next
      if (line.line === '\r\n' || line.line === '\n') {
        complete = true
        break
      }

      const colon = line.line.indexOf(':')
      headers.set(line.line.slice(0, colon).toLowerCase(), line.line.slice(colon + 1).trim())
    }

    if (!complete) return {messages}
    const length = Number(headers.get('content-length'))
    if (!Number.isInteger(length)) return {messages, failed: `no Content-Length: ${JSON.stringify([...headers])}`}
    if (at + length > stream.length) return {messages}
    const location = headers.get('content-location') ?? ''
    messages.push({
      // msg.get('content-location', '')[8:] or channel
      channel: location.slice(8) || subscribed,
      type: headers.get('content-type') ?? '',
      sender: headers.get('from'),
      body: Buffer.from(stream.subarray(at, at + length)),
    })
    at += length
  }
}

/**
 * A Python 2 subscriber. `urllib` (msgdump2.py): `Python-urllib/1.17`,
 * HTTP/1.0, the socket's bytes read as they come. `urllib2`:
 * `Python-urllib/2.7`, HTTP/1.1 with `Connection: close`, httplib taking off
 * the chunking before the script reads. Either way read as msgdump2.py reads.
 */
export class PythonSubscriber {
  private constructor(
    readonly client: RawClient,
    private readonly channel: string,
    private readonly chunked: boolean,
  ) {}

  /** The exact request: urllib's open_http (Host, then User-Agent), or urllib2's do_open. */
  static request(path: string, host: string, library: 'urllib' | 'urllib2'): string {
    if (library === 'urllib') return `GET ${path} HTTP/1.0\r\nHost: ${host}\r\nUser-Agent: Python-urllib/1.17\r\n\r\n`
    return `GET ${path} HTTP/1.1\r\nAccept-Encoding: identity\r\nHost: ${host}\r\nConnection: close\r\nUser-Agent: Python-urllib/2.7\r\n\r\n`
  }

  static async open(server: BusServer, channel: string, library: 'urllib' | 'urllib2', query = ''): Promise<PythonSubscriber> {
    const host = `127.0.0.1:${portOf(server)}`
    // msgdump2.py: 'http://localhost:8888/msgbus/%s' % channel, then '?' + urlencode(...) for -s/-t.
    const client = await RawClient.open(portOf(server), PythonSubscriber.request(`/msgbus/${channel}${query}`, host, library))
    const subscriber = new PythonSubscriber(client, channel, library === 'urllib2')
    await client.until(() => subscriber.stream().length > 0, 5000, 'the stream to open')
    return subscriber
  }

  get headers(): Map<string, string> {
    return splitHead(this.client.data)?.headers ?? new Map()
  }

  /** msgdump2.py's regex on the Content-Type: '^multipart/.*boundary="?([^;"\n]*)'. */
  get boundary(): string {
    return /^multipart\/.*boundary="?([^;"\n]*)/is.exec(this.headers.get('content-type')!)![1]
  }

  /** What the script's file object reads: the body, de-chunked by httplib for urllib2. */
  stream(): Buffer {
    const head = splitHead(this.client.data)
    if (head === undefined) return Buffer.alloc(0)
    return this.chunked ? dechunk(head.body).payload : head.body
  }

  read(): {messages: Received2007[]; failed?: string} {
    return readLikeMsgdump2(this.stream(), this.boundary, this.channel)
  }

  async waitMessages(count: number, timeoutMs = 5000): Promise<Received2007[]> {
    await this.client.until(
      () => {
        const {messages, failed} = this.read()
        if (failed !== undefined) throw new Error(`msgdump2.py's assert fails on ${JSON.stringify(failed)} after ${messages.length} messages`)
        return messages.length >= count
      },
      timeoutMs,
      `${count} messages for Python`,
    )
    return this.read().messages
  }

  close(): void {
    this.client.close()
  }
}
