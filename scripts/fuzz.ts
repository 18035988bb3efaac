// Fuzzes `msgbus serve` over raw TCP while well-behaved clients check that it keeps working.
//
//   node --import tsx/esm scripts/fuzz.ts [--seconds N] [--seed S] [--concurrency C] [--bin bin/run.js]
//
// Starts the server from the built CLI (needs dist/), keeps a few subscribers
// of /msgbus/fuzz-check and a publisher sending a numbered message every
// ~50 ms, and meanwhile throws random and mutated requests at the server from
// up to C connections at a time. Fails (exit 1, printing the seed and the last
// inputs) when the server exits, a complete request gets neither a response
// nor a close within 10 s, the liveness probe (HEAD /msgbus/ every second)
// goes unanswered for 10 s, a subscriber misses or reorders a message the
// publisher got a 204 for, or connections are left open on the server once
// every fuzz socket is closed, or the server's RSS passes --max-rss MiB.
// Besides the random requests it plays two attacks: subscriptions to every
// channel whose filters are the worst cases of a wildcard matcher
// (`*a*a*a*a*a*a*a*a*a*b`, in type= and sender=), held for the whole run
// while bait content types and sender names are published; and publishers
// that declare or send bodies of up to --max-message-size and hold back the
// last byte. A failing run replays with the same --seed (timing aside: the
// inputs are the same, their interleaving may not be).
import {spawn} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {request as httpRequest} from 'node:http'
import {connect, type Socket} from 'node:net'
import {fileURLToPath} from 'node:url'
import {statusBytes, tcpSockets} from '../tools/proc.js'
import {seededRandom} from '../tools/random.js'
import {ChunkedDecoder} from '../src/lib/protocol/chunked-decoder.js'
import {boundaryOf, MultipartParser} from '../src/lib/protocol/multipart-parser.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

// ---------------------------------------------------------------------------
// Options

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`)
  if (at >= 0 && process.argv[at + 1] !== undefined) return process.argv[at + 1]
  const inline = process.argv.find((arg) => arg.startsWith(`--${name}=`))
  return inline ? inline.slice(name.length + 3) : fallback
}

const SECONDS = Number(option('seconds', '20'))
const SEED = Number(option('seed', String(Math.floor(Math.random() * 2 ** 31))))
const CONCURRENCY = Number(option('concurrency', '50'))
const BIN = option('bin', `${ROOT}bin/run.js`)
/** A complete request must get a response or a close within this. */
const HANG_MS = 10_000
/** An incomplete request is left to the server's own timeouts, up to this; longer is a failure. */
const INCOMPLETE_MS = Number(option('incomplete-deadline', '45')) * 1000
const MAX_HELD = 200
const SUBSCRIBERS = 3
/** The server's resident memory may not pass this (MiB): held bodies must not add up. */
const MAX_RSS_MIB = Number(option('max-rss', '1024'))
/** Subscriptions with pathological filters, held open all run long. */
const HOSTILE_SUBSCRIBERS = 4

// ---------------------------------------------------------------------------
// Seeded randomness (mulberry32)

const random = seededRandom(SEED).next

const int = (n: number): number => Math.floor(random() * n)
const between = (min: number, max: number): number => min + int(max - min + 1)
const chance = (p: number): boolean => random() < p
const pick = <T>(list: readonly T[]): T => list[int(list.length)]
const randomBytes = (n: number): Buffer => Buffer.from(Array.from({length: n}, () => int(256)))
const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1')

// ---------------------------------------------------------------------------
// Bookkeeping

const stats = {
  requests: 0,
  statuses: new Map<string, number>(),
  closedWithoutResponse: 0,
  abortedByUs: 0,
  incomplete: 0,
  unclear: 0,
  incompleteClosedByServer: [] as number[],
  incompleteOpenAtEnd: 0,
  heldDropped: 0,
  connectErrors: 0,
  published: 0,
  probes: 0,
  heldBodies: 0,
  peakRssMiB: 0,
}
const failures: string[] = []
const lastInputs: string[] = []
const started = Date.now()
let stopping = false

function count(status: string): void {
  stats.statuses.set(status, (stats.statuses.get(status) ?? 0) + 1)
}

function show(bytes: Buffer, max = 400): string {
  const text = JSON.stringify(bytes.subarray(0, max).toString('latin1'))
  return bytes.length > max ? `${text}... (${bytes.length} bytes)` : text
}

function remember(input: string): void {
  lastInputs.push(input)
  if (lastInputs.length > 20) lastInputs.shift()
}

function fail(reason: string): void {
  if (failures.length < 50) failures.push(`${((Date.now() - started) / 1000).toFixed(1)}s: ${reason}`)
}

// ---------------------------------------------------------------------------
// The server

const server = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--address', '127.0.0.1'], {
  env: {...process.env, NO_COLOR: '1'},
  stdio: ['ignore', 'ignore', 'pipe'],
})
let serverLog = ''
let serverGone = false
server.stderr!.on('data', (chunk: Buffer) => {
  serverLog += chunk.toString()
  if (serverLog.length > 200_000) serverLog = serverLog.slice(-100_000)
})
server.on('exit', (code, signal) => {
  serverGone = true
  if (!stopping) fail(`the server exited (code ${code}, signal ${signal}); its last log lines:\n${serverLog.split("\n").slice(-40).join('\n')}`)
})

async function serverPort(): Promise<number> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const match = /listen HTTP on \S*:(\d+)/.exec(serverLog)
    if (match) return Number(match[1])
    if (serverGone || Date.now() > deadline) throw new Error(`serve did not start: ${serverLog}`)
    await sleep(25)
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------
// Well-behaved clients

const TOKEN = randomBytes(4).toString('hex')
const acknowledged: number[] = []

class CheckSubscriber {
  readonly received: number[] = []
  private head = Buffer.alloc(0)
  private decoder?: ChunkedDecoder
  closed = false
  ready = false
  readonly socket: Socket

  constructor(
    readonly index: number,
    port: number,
  ) {
    this.socket = connect(port, '127.0.0.1')
    this.socket.on('connect', () => this.socket.write('GET /msgbus/fuzz-check HTTP/1.1\r\nHost: fuzz\r\n\r\n'))
    this.socket.on('data', (chunk: Buffer) => this.read(chunk))
    this.socket.on('error', () => {})
    this.socket.on('close', () => {
      this.closed = true
      if (!stopping) fail(`well-behaved subscriber ${index} was disconnected`)
    })
  }

  private read(chunk: Buffer): void {
    if (this.decoder) {
      this.feed(chunk)
      return
    }

    this.head = Buffer.concat([this.head, chunk])
    const end = this.head.indexOf('\r\n\r\n')
    if (end < 0) return
    const head = this.head.subarray(0, end).toString('latin1')
    const boundary = boundaryOf(/^content-type:\s*(.*)$/im.exec(head)?.[1])
    if (!/^HTTP\/1\.1 200 /.test(head) || !boundary || !/^transfer-encoding:\s*chunked/im.test(head)) {
      fail(`well-behaved subscriber ${this.index} got ${JSON.stringify(head)}`)
      this.socket.destroy()
      return
    }

    const parser = new MultipartParser(boundary, (part) => {
      const match = /^fuzz-check (\d+) ([0-9a-f]+)$/.exec(part.body.toString('latin1'))
      if (match && match[2] === TOKEN) this.received.push(Number(match[1]))
    })
    this.decoder = new ChunkedDecoder((payload) => parser.write(payload))
    this.ready = true
    this.feed(this.head.subarray(end + 4))
  }

  private feed(bytes: Buffer): void {
    try {
      this.decoder!.write(bytes)
    } catch (error) {
      fail(`well-behaved subscriber ${this.index} could not read its stream: ${error}`)
      this.socket.destroy()
    }
  }
}

/**
 * A subscription to every channel whose filters are a wildcard matcher's
 * worst cases, held open (and read) for the whole run, so every bait type or
 * sender the fuzzer publishes is matched against them.
 */
class HostileSubscriber {
  readonly socket: Socket
  status = ''
  closed = false
  /** Closed before the run ended: cut as slow, or refused. */
  closedByServer = false

  constructor(index: number, port: number) {
    const pattern = ['*a*a*a*a*a*a*a*a*a*b', `*${'?'.repeat(250)}*b`, `${'*a'.repeat(30)}*b`, '*a?*a?*a?*a?*a?*b'][index % 4]
    // As many as a list may hold (1,024 characters), up to the issue's 10.
    const list = Array.from({length: Math.min(10, Math.floor(1024 / pattern.length))}, () => pattern).join(',')
    const format = index % 2 === 0 ? '' : '&format=sse'
    this.socket = connect(port, '127.0.0.1')
    this.socket.on('connect', () => this.socket.write(`GET /msgbus/?type=${list}&sender=${list}${format} HTTP/1.1\r\nHost: fuzz\r\n\r\n`))
    this.socket.on('data', (chunk: Buffer) => {
      if (this.status === '') this.status = /^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 'other'
    })
    this.socket.on('error', () => {})
    this.socket.on('close', () => {
      this.closed = true
      if (!stopping) this.closedByServer = true
    })
  }
}

/** One HTTP request with Node's client; undefined status on error or timeout. */
function call(port: number, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{status?: number; error?: string}> {
  return new Promise((resolve) => {
    const req = httpRequest({host: '127.0.0.1', port, method, path, headers, agent: false, timeout: HANG_MS}, (res) => {
      res.resume()
      res.on('end', () => resolve({status: res.statusCode}))
      res.on('error', (error) => resolve({error: String(error)}))
    })
    req.on('socket', (socket) =>
      socket.once('connect', () => recent.set(`${socket.localAddress}:${socket.localPort}`, `well-behaved ${method} ${path} at ${((Date.now() - started) / 1000).toFixed(1)} s`)),
    )
    req.on('timeout', () => {
      req.destroy()
      resolve({error: `no response within ${HANG_MS} ms`})
    })
    req.on('error', (error) => resolve({error: String(error)}))
    req.end(body)
  })
}

async function publisher(port: number): Promise<void> {
  for (let n = 0; !stopping; n++) {
    const next = Date.now() + 50
    const reply = await call(port, 'POST', '/msgbus/fuzz-check', latin1(`fuzz-check ${n} ${TOKEN}`), {'Content-Type': 'text/plain'})
    if (reply.status === 204) acknowledged.push(n)
    else if (!stopping) fail(`well-behaved publish #${n} got ${reply.status ?? reply.error}`)
    stats.published++
    await sleep(Math.max(0, next - Date.now()))
  }
}

async function prober(port: number): Promise<void> {
  while (!stopping) {
    const next = Date.now() + 1000
    const reply = await call(port, 'HEAD', '/msgbus/')
    stats.probes++
    if (reply.status !== 200 && !stopping) fail(`liveness probe HEAD /msgbus/ got ${reply.status ?? reply.error}`)
    await sleep(Math.max(0, next - Date.now()))
  }
}

// ---------------------------------------------------------------------------
// Random requests

const WORDS = ['fuzz', 'fuzz/a', 'a/b/c', 'x%20y', '%C3%BC', 'sensors/kitchen', '', 'fuzz-check-not', 'ü']
/** Patterns that cost a backtracking (regular-expression) matcher exponential or polynomial time. */
function pathologicalPatterns(): string {
  const group = pick(['*a*a*a*a*a*a*a*a*a*b', `${'*a'.repeat(between(10, 40))}*b`, `*${'?'.repeat(between(20, 200))}*b`, `${'*'.repeat(between(2, 60))}b`, '*a?*a?*a?*a?*a?*b'])
  return Array.from({length: pick([1, 10, between(2, 40)])}, () => group).join(',')
}

/** Values a backtracking matcher of those patterns chokes on: long runs that almost match. */
function baitName(): string {
  return pick(['a'.repeat(40), 'a'.repeat(between(100, 300)), `${'a'.repeat(between(20, 120))}c`, 'ab'.repeat(between(10, 80))])
}

const TYPES = ['text/plain', 'application/json', 'text/plain; charset=utf-8', 'image/png', 'x', '', 'text/', '/plain', 'text/plain;;', 'multipart/form-data', 'a/b; c="d']

function contentType(): string {
  return chance(0.15) ? `${pick(['text', 'a'.repeat(between(1, 140))])}/${baitName()}` : pick(TYPES)
}

function randomPath(): string {
  const query = pick([
    '', '', '?type=text/*,!image/*', '?sender=a*,!b', '?format=sse', '?format=ndjson', '?format=raw', '?format=nope', '?type=application/x-*',
    `?${'q'.repeat(between(1, 3000))}`, `?type=${pathologicalPatterns()}`, `?sender=${pathologicalPatterns()}`,
  ])
  return pick([
    () => `/msgbus/${pick(WORDS)}${query}`,
    () => `/msgbus/${pick(WORDS)}`,
    () => '/msgbus',
    () => `/msgbus?${pick(['a=b', ''])}`,
    () => pick(['/', '/index.html', '/../etc/passwd', '/msgbus/../x', '*', 'http://fuzz/msgbus/fuzz', '//msgbus/x']),
    () => `/msgbus/${'%'.repeat(between(1, 3))}${pick(['zz', 'C3%28', '00', '7F', 'F4%90%80%80', 'E2%82', 'ED%A0%80', '09', '2F', 'g'])}`,
    () => `/msgbus/${'x'.repeat(between(200, 400))}`,
    () => `/msgbus/${'%C3%BC'.repeat(between(100, 140))}`,
    () => `/msgbus/${randomBytes(between(1, 12)).toString('latin1')}`,
  ])()
}

function formBody(): {type: string; body: Buffer} {
  const boundary = pick(['----fuzzform', 'x', `b${int(1e6)}`])
  const pieces: Buffer[] = []
  for (let i = between(0, 4); i > 0; i--) {
    const file = chance(0.5)
    pieces.push(latin1(`--${boundary}\r\nContent-Disposition: form-data; name="f${i}"${file ? `; filename="a${i}.bin"` : ''}\r\n`))
    if (file || chance(0.3)) pieces.push(latin1(`Content-Type: ${contentType()}\r\n`))
    pieces.push(latin1('\r\n'), chance(0.5) ? randomBytes(between(0, 200)) : latin1(`value ${i}`), latin1('\r\n'))
  }

  if (chance(0.9)) pieces.push(latin1(`--${boundary}--\r\n`))
  return {type: `multipart/form-data; boundary=${boundary}`, body: Buffer.concat(pieces)}
}

function validRequest(): Buffer {
  const version = chance(0.85) ? 'HTTP/1.1' : 'HTTP/1.0'
  const headers: string[] = [`Host: fuzz`]
  if (chance(0.2)) headers.push(`Authorization: Basic ${pick([Buffer.from(`${pick(['alice', 'b\u00fcb', 'x\ty', '', baitName()])}:pw`).toString('base64'), '!!!', 'YQ', ''])}`)
  if (chance(0.1)) headers.push(`Accept: ${pick(['text/event-stream', 'application/x-ndjson', 'application/json', '*/*', 'text/html'])}`)
  if (chance(0.1)) headers.push(`Origin: http://${pick(['fuzz', 'evil.example'])}`)
  if (chance(0.2)) headers.push(`Connection: ${pick(['close', 'keep-alive', 'upgrade'])}`)
  const kind = int(10)
  if (kind < 4) {
    // Publish with a Content-Length or chunked body.
    const form = chance(0.2) ? formBody() : undefined
    const body = form?.body ?? randomBytes(pick([0, 1, 10, 100, 1000, between(0, 70_000)]))
    headers.push(`Content-Type: ${form?.type ?? contentType()}`)
    if (chance(0.1)) headers.push('Expect: 100-continue')
    if (chance(0.3) && version === 'HTTP/1.1') {
      headers.push('Transfer-Encoding: chunked')
      const chunks: Buffer[] = []
      for (let at = 0; at < body.length; ) {
        const n = Math.min(body.length - at, between(1, 5000))
        chunks.push(latin1(`${n.toString(16)}\r\n`), body.subarray(at, at + n), latin1('\r\n'))
        at += n
      }

      chunks.push(latin1('0\r\n\r\n'))
      return Buffer.concat([latin1(`POST ${randomPath()} ${version}\r\n${headers.join('\r\n')}\r\n\r\n`), ...chunks])
    }

    headers.push(`Content-Length: ${body.length}`)
    return Buffer.concat([latin1(`POST ${randomPath()} ${version}\r\n${headers.join('\r\n')}\r\n\r\n`), body])
  }

  const method = kind < 7 ? 'GET' : pick(['HEAD', 'OPTIONS', 'DELETE', 'PUT', 'PATCH', 'TRACE', 'CONNECT', 'BREW', 'get'])
  if (method === 'OPTIONS' && chance(0.5)) headers.push('Access-Control-Request-Method: POST')
  return latin1(`${method} ${randomPath()} ${version}\r\n${headers.join('\r\n')}\r\n\r\n`)
}

const FRAMING = [
  ['Content-Length: 5', 'Transfer-Encoding: chunked'],
  ['Content-Length: 5', 'Content-Length: 6'],
  ['Content-Length: -1'],
  ['Content-Length: 0x10'],
  ['Content-Length: 99999999999999999999'],
  ['Content-Length: 1e3'],
  ['Content-Length: 3, 3'],
  ['Transfer-Encoding: gzip, chunked'],
  ['Transfer-Encoding: chunked, identity'],
  ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'],
  ['Transfer-Encoding: identity'],
  ['Transfer-Encoding : chunked'],
  ['Transfer-Encoding: xchunked'],
  [' Content-Length: 3'],
  ['Content-Length: 100000000'],
  [],
]

type Mutation = (input: Buffer) => Buffer

function splice(input: Buffer, at: number, remove: number, insert: Buffer): Buffer {
  return Buffer.concat([input.subarray(0, at), insert, input.subarray(at + remove)])
}

const MUTATIONS: Array<[string, Mutation]> = [
  ['bit flip', (input) => {
    const out = Buffer.from(input)
    if (out.length > 0) out[int(out.length)] ^= 1 << int(8)
    return out
  }],
  ['insert bytes', (input) => splice(input, int(input.length + 1), 0, pick([randomBytes(between(1, 8)), latin1('\r\n'), latin1('\n'), latin1('\r'), latin1(':'), latin1('\0'), latin1(' ')]))],
  ['delete bytes', (input) => splice(input, int(input.length + 1), between(1, 16), Buffer.alloc(0))],
  ['double a CRLF', (input) => {
    const at = input.indexOf('\r\n', int(input.length))
    return at < 0 ? input : splice(input, at, 0, latin1('\r\n'))
  }],
  ['remove a CRLF', (input) => {
    const at = input.indexOf('\r\n', int(Math.max(1, input.indexOf('\r\n\r\n') + 1)))
    return at < 0 ? input : splice(input, at, 2, Buffer.alloc(0))
  }],
  ['bare LF line ends', (input) => latin1(input.toString('latin1').replaceAll('\r\n', '\n'))],
  ['huge header line', (input) => {
    const at = input.indexOf('\r\n')
    return at < 0 ? input : splice(input, at + 2, 0, latin1(`X-${'Big'.repeat(between(1, 3))}: ${'a'.repeat(pick([1000, 8000, 16_400, 70_000]))}\r\n`))
  }],
  ['many headers', (input) => {
    const at = input.indexOf('\r\n')
    return at < 0 ? input : splice(input, at + 2, 0, latin1(Array.from({length: between(100, 3000)}, (_, i) => `X-${i}: ${i}\r\n`).join('')))
  }],
  ['random method', (input) => {
    const space = input.indexOf(' ')
    return space < 0 ? input : splice(input, 0, space, pick([latin1(pick(['GETT', 'POS', 'PRI', 'M-SEARCH', 'G ET', ''])), randomBytes(between(1, 6))]))
  }],
  ['random version', (input) => {
    const line = input.indexOf('\r\n')
    const space = input.lastIndexOf(' ', line)
    return line < 0 || space < 0 ? input : splice(input, space + 1, line - space - 1, latin1(pick(['HTTP/1.2', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.1x', 'HTTP/1', 'http/1.1', 'HTTP/1.1 ', '', 'HTTP/9.9'])))
  }],
  ['random path', (input) => {
    const first = input.indexOf(' ')
    const second = input.indexOf(' ', first + 1)
    return first < 0 || second < 0 ? input : splice(input, first + 1, second - first - 1, latin1(randomPath()))
  }],
  ['percent garbage', (input) => {
    const at = input.indexOf('/msgbus/')
    return at < 0 ? input : splice(input, at + 8, 0, latin1(pick(['%', '%%', '%zz', '%C3', '%ED%A0%80', '%00', '%0A', '%7F', '%FF%FE', '%25%'])))
  }],
  ['framing headers', (input) => {
    const end = input.indexOf('\r\n\r\n')
    if (end < 0) return input
    const head = input
      .subarray(0, end)
      .toString('latin1')
      .split('\r\n')
      .filter((line) => !/^(content-length|transfer-encoding):/i.test(line))
    head.push(...pick(FRAMING))
    return Buffer.concat([latin1(`${head.join('\r\n')}\r\n\r\n`), input.subarray(end + 4)])
  }],
  ['truncate', (input) => input.subarray(0, int(input.length + 1))],
  ['pipeline', (input) => Buffer.concat([input, validRequest(), ...(chance(0.5) ? [validRequest()] : [])])],
  ['random bytes', () => randomBytes(between(0, 2000))],
]

interface Attempt {
  bytes: Buffer
  mutations: string[]
  /** Writes in so many pieces, waiting between them. */
  pieces: number
  abort: boolean
  halfClose: boolean
}

/** A publish that declares a body of up to the server's largest and sends all of it but the last byte, or some, or none. */
function heldBody(): Buffer {
  const length = pick([8 * 1024 * 1024, 8 * 1024 * 1024 - 1, between(1, 8 * 1024 * 1024)])
  const sent = pick([length - 1, 0, int(length)])
  stats.heldBodies++
  const head = `POST /msgbus/${pick(WORDS)} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: ${contentType()}\r\nContent-Length: ${length}\r\n\r\n`
  return Buffer.concat([latin1(head), Buffer.alloc(sent, 0x61)])
}

function attempt(): Attempt {
  if (chance(0.02)) return {bytes: heldBody(), mutations: ['held body'], pieces: 1, abort: false, halfClose: false}
  let bytes = validRequest()
  const mutations: string[] = []
  if (chance(0.7)) {
    for (let i = between(1, 3); i > 0; i--) {
      const [name, mutate] = pick(MUTATIONS)
      bytes = mutate(bytes)
      mutations.push(name)
    }
  }

  return {bytes, mutations, pieces: chance(0.3) ? between(2, 5) : 1, abort: chance(0.05), halfClose: chance(0.05)}
}

/**
 * Whether the server has everything it needs to answer the first request:
 * 'complete' (it must answer or close), 'incomplete' (it may wait for more,
 * within its own timeouts) or 'unclear' (framing no server should accept;
 * it should refuse it, but that is reported, not failed).
 */
function framing(bytes: Buffer): 'complete' | 'incomplete' | 'unclear' {
  const text = bytes.toString('latin1')
  const crlf = text.indexOf('\r\n\r\n')
  const lf = text.indexOf('\n\n')
  const ends = [crlf >= 0 ? crlf + 4 : -1, lf >= 0 ? lf + 2 : -1].filter((n) => n >= 0)
  if (ends.length === 0) return 'incomplete'
  const headEnd = Math.min(...ends)
  const head = text.slice(0, headEnd)
  const body = text.slice(headEnd)
  // Not a request line: a server should refuse it at once, but that is reported, not failed.
  if (!/^[A-Za-z]+ \S+ HTTP\/1\.[01]\r?\n/.test(head)) return 'unclear'
  const lengths = [...head.matchAll(/^content-length:[ \t]*([^\r\n]*)$/gim)].map((m) => m[1].trim())
  const encodings = [...head.matchAll(/^transfer-encoding:[ \t]*([^\r\n]*)$/gim)].map((m) => m[1].trim().toLowerCase())
  if (encodings.length > 0) {
    if (lengths.length > 0 || encodings.length > 1 || encodings[0] !== 'chunked') return 'unclear'
    return chunkedFraming(body)
  }

  if (lengths.length === 0) return 'complete'
  if (lengths.length > 1 || !/^\d+$/.test(lengths[0])) return 'unclear'
  return body.length >= Number(lengths[0]) ? 'complete' : 'incomplete'
}

/** Walks chunked framing: complete at the last chunk's blank line, incomplete when the bytes run out first; malformed framing must be refused. */
function chunkedFraming(body: string): 'complete' | 'incomplete' {
  let at = 0
  for (;;) {
    const lf = body.indexOf('\n', at)
    if (lf < 0) return 'incomplete'
    const size = /^([0-9a-fA-F]+)[ \t]*(;[^\r\n]*)?\r?$/.exec(body.slice(at, lf))
    if (!size) return 'complete'
    const n = Number.parseInt(size[1], 16)
    at = lf + 1
    if (n === 0) {
      // Trailer lines up to a blank one.
      for (;;) {
        const end = body.indexOf('\n', at)
        if (end < 0) return 'incomplete'
        if (/^\r?$/.test(body.slice(at, end))) return 'complete'
        at = end + 1
      }
    }

    if (at + n + 1 > body.length) return 'incomplete'
    at += n
    if (body.startsWith('\r\n', at)) at += 2
    else if (body[at] === '\n') at += 1
    else if (body[at] === '\r' && at + 1 === body.length) return 'incomplete'
    else return 'complete'
  }
}

/** The client end of recent fuzz connections, `address:port` -> input, to name a connection the server did not let go. */
const recent = new Map<string, string>()

const held = new Set<{socket: Socket; since: number; input: string}>()
let sourceAddress = 0

/** Sends one attempt on a fresh connection and watches what the server does with it. */
async function fuzzOnce(port: number): Promise<void> {
  const plan = attempt()
  const input = `${plan.mutations.join('+') || 'valid'}${plan.abort ? ' (aborted)' : ''}${plan.halfClose ? ' (half-closed)' : ''}: ${show(plan.bytes)}`
  remember(input)
  stats.requests++
  // Spread over 127.0.0.2-17 so closed connections do not use up one address's ephemeral ports.
  const socket = connect({port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (sourceAddress++ % 16)}`})
  let response = Buffer.alloc(0)
  let closed = false
  let wake: () => void = () => {}
  socket.on('data', (chunk: Buffer) => {
    if (response.length < 64) response = Buffer.concat([response, chunk])
    wake()
  })
  socket.on('close', () => {
    closed = true
    wake()
  })
  socket.on('error', () => {})
  const connected = await new Promise<boolean>((resolve) => {
    socket.once('connect', () => resolve(true))
    socket.once('error', () => resolve(false))
  })
  if (!connected) {
    stats.connectErrors++
    return
  }

  recent.set(`${socket.localAddress}:${socket.localPort}`, input)
  if (recent.size > 50_000) recent.delete(recent.keys().next().value!)

  const cuts = Array.from({length: plan.pieces - 1}, () => int(plan.bytes.length + 1)).sort((a, b) => a - b)
  let at = 0
  for (const cut of [...cuts, plan.bytes.length]) {
    if (closed) break
    if (cut > at) socket.write(plan.bytes.subarray(at, cut))
    at = cut
    if (cut < plan.bytes.length) await sleep(int(30))
    if (plan.abort && chance(0.5)) break
  }

  if (plan.abort) {
    await sleep(int(20))
    socket.destroy()
    stats.abortedByUs++
    return
  }

  if (plan.halfClose && !closed) socket.end()
  const kind = plan.halfClose ? 'complete' : framing(plan.bytes)
  const waitFor = async (ms: number): Promise<void> => {
    const deadline = Date.now() + ms
    while (response.length === 0 && !closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(250, deadline - Date.now()))
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
  }

  await waitFor(kind === 'complete' ? HANG_MS : 2000)
  if (response.length > 0) {
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(response.toString('latin1'))
    count(status ? status[1] : 'other bytes')
    // Let a pipelined request or two be answered too, then go.
    await sleep(int(50))
    socket.destroy()
    return
  }

  if (closed) {
    stats.closedWithoutResponse++
    count('closed')
    return
  }

  if (kind === 'complete') {
    fail(`no response and no close within ${HANG_MS / 1000} s for a complete request: ${input}`)
    socket.destroy()
    return
  }

  // Incomplete (or framed so that the server may wait): the server's own timeouts apply.
  if (kind === 'unclear') stats.unclear++
  else stats.incomplete++
  if (held.size >= MAX_HELD) {
    stats.heldDropped++
    socket.destroy()
    return
  }

  const entry = {socket, since: Date.now(), input: `${kind}: ${input}`}
  held.add(entry)
  socket.on('close', () => {
    if (!held.has(entry)) return
    held.delete(entry)
    stats.incompleteClosedByServer.push(Date.now() - entry.since)
    if (response.length > 0) {
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(response.toString('latin1'))
      count(status ? `${status[1]} (late)` : 'other bytes (late)')
    }
  })
}

function watchHeld(): void {
  for (const entry of held) {
    if (Date.now() - entry.since > INCOMPLETE_MS) {
      fail(`an incomplete request was kept open over ${INCOMPLETE_MS / 1000} s: ${entry.input}`)
      held.delete(entry)
      entry.socket.destroy()
    }
  }
}

async function worker(port: number, until: number): Promise<void> {
  while (Date.now() < until && failures.length === 0) {
    try {
      await fuzzOnce(port)
    } catch (error) {
      fail(`fuzzer error: ${(error as Error).stack}`)
    }
  }
}

/** The server's resident memory, sampled; over --max-rss is a failure (once). */
function watchRss(): void {
  if (server.pid === undefined || serverGone) return
  try {
    const mib = statusBytes(server.pid, 'VmRSS') / 1024 / 1024
    if (mib > MAX_RSS_MIB && stats.peakRssMiB <= MAX_RSS_MIB) fail(`the server's RSS reached ${mib.toFixed(0)} MiB (the limit is ${MAX_RSS_MIB} MiB)`)
    stats.peakRssMiB = Math.max(stats.peakRssMiB, mib)
  } catch {
    // gone meanwhile
  }
}

// ---------------------------------------------------------------------------
// Connections left on the server: /proc/net/tcp{,6}, local port = the server's

function serverPeers(port: number): string[] {
  return tcpSockets(port)
    .filter((socket) => socket.localPort === port && socket.localAddress === '127.0.0.1' && (socket.state === 'ESTABLISHED' || socket.state === 'CLOSE_WAIT'))
    .map((socket) => `${socket.state} ${socket.remoteAddress}:${socket.remotePort}`)
}

// ---------------------------------------------------------------------------

function summary(port: number | undefined): string {
  const seconds = (Date.now() - started) / 1000
  const statuses = [...stats.statuses.entries()].sort((a, b) => b[1] - a[1]).map(([status, n]) => `${status}: ${n}`)
  const late = stats.incompleteClosedByServer.slice().sort((a, b) => a - b)
  const median = late.length > 0 ? `${(late[Math.floor(late.length / 2)] / 1000).toFixed(1)} s median, ${(late.at(-1)! / 1000).toFixed(1)} s max` : '-'
  return [
    `fuzz: seed ${SEED}, ${seconds.toFixed(1)} s, ${CONCURRENCY} connections, server port ${port ?? '-'}`,
    `requests: ${stats.requests} (${(stats.requests / Math.max(SECONDS, 0.001)).toFixed(0)}/s over the fuzzing budget), aborted by us: ${stats.abortedByUs}, connect errors: ${stats.connectErrors}`,
    `responses: ${statuses.join(', ') || '-'}`,
    `closed without a response: ${stats.closedWithoutResponse}`,
    `requests left to the server's timeouts: ${stats.incomplete} incomplete, ${stats.unclear} malformed (closed by the server: ${late.length}, ${median}; still open at the end: ${stats.incompleteOpenAtEnd}; not held, over ${MAX_HELD}: ${stats.heldDropped})`,
    `well-behaved: ${stats.published} publishes (${acknowledged.length} acknowledged), ${stats.probes} probes, subscribers received ${subscribers.map((s) => s.received.length).join('/')}`,
    `attacks: ${hostile.length} subscriptions with pathological filters (answered ${hostile.map((h) => h.status || '-').join('/')}, ${hostile.filter((h) => h.closedByServer).length} closed by the server), ${stats.heldBodies} held bodies; server RSS peak ${stats.peakRssMiB.toFixed(0)} MiB`,
  ].join('\n')
}

let subscribers: CheckSubscriber[] = []
let hostile: HostileSubscriber[] = []

async function main(): Promise<number> {
  let port: number | undefined
  try {
    port = await serverPort()
    subscribers = Array.from({length: SUBSCRIBERS}, (_, i) => new CheckSubscriber(i, port!))
    const ready = Date.now() + 5000
    while (!subscribers.every((s) => s.ready) && Date.now() < ready) await sleep(20)
    if (!subscribers.every((s) => s.ready)) fail('well-behaved subscribers could not subscribe')
    hostile = Array.from({length: HOSTILE_SUBSCRIBERS}, (_, i) => new HostileSubscriber(i, port!))
    const background = [publisher(port), prober(port)]
    const heldTimer = setInterval(watchHeld, 500)
    const rssTimer = setInterval(watchRss, 250)
    const until = Date.now() + SECONDS * 1000
    await Promise.all(Array.from({length: CONCURRENCY}, () => worker(port!, until)))

    // The end: every acknowledged message must have reached every subscriber, in order.
    await sleep(300)
    const deadline = Date.now() + 5000
    const complete = (s: CheckSubscriber) => acknowledged.every((n) => s.received.includes(n))
    while (!subscribers.every(complete) && Date.now() < deadline) await sleep(50)
    stopping = true
    await Promise.all(background)
    clearInterval(heldTimer)
    clearInterval(rssTimer)
    watchRss()
    const refusedHostile = hostile.filter((h) => h.status !== '200')
    if (refusedHostile.length > 0) fail(`subscriptions with pathological filters (within the limits) were answered ${refusedHostile.map((h) => h.status || 'nothing').join(', ')}`)
    for (const s of subscribers) {
      const missing = acknowledged.filter((n) => !s.received.includes(n))
      if (missing.length > 0) fail(`subscriber ${s.index} missed acknowledged messages ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? '...' : ''}`)
      const disorder = s.received.findIndex((n, i) => i > 0 && n <= s.received[i - 1])
      if (disorder > 0) fail(`subscriber ${s.index} got message ${s.received[disorder]} after ${s.received[disorder - 1]}`)
    }

    // Leaks: once every fuzz socket is closed, only the subscribers may stay.
    stats.incompleteOpenAtEnd = held.size
    const oldest = Math.max(0, ...[...held].map((entry) => Date.now() - entry.since))
    if (held.size > 0) console.log(`note: ${held.size} incomplete request(s) still open at the end (oldest ${(oldest / 1000).toFixed(1)} s); closing them`)
    for (const entry of held) entry.socket.destroy()
    held.clear()
    // A leak is a server connection whose peer is not one of the subscribers (peers are
    // compared, not counts: /proc can list one connection twice while it changes state).
    const mine = new Set([...subscribers, ...hostile].filter((sub) => !sub.closed).map((sub) => `${sub.socket.localAddress}:${sub.socket.localPort}`))
    const leakedPeers = () => [...new Set(serverPeers(port!))].filter((peer) => !mine.has(peer.split(' ')[1]))
    const leakDeadline = Date.now() + 10_000
    await sleep(1000)
    let left = leakedPeers()
    while (left.length > 0 && Date.now() < leakDeadline) {
      await sleep(200)
      left = leakedPeers()
    }

    if (left.length > 0) {
      const leaked = left.map((peer) => `${peer} <- ${recent.get(peer.split(' ')[1]) ?? '(not a fuzz connection)'}`)
      fail(`connections left on the server after every fuzz socket closed (besides the ${mine.size} subscribers):\n    ${leaked.join('\n    ')}`)
    }
  } catch (error) {
    fail(`fuzzer error: ${(error as Error).stack}`)
  } finally {
    stopping = true
    for (const s of [...subscribers, ...hostile]) s.socket.destroy()
    if (!serverGone) {
      server.kill('SIGTERM')
      const killer = setTimeout(() => server.kill('SIGKILL'), 5000)
      await new Promise((resolve) => server.once('exit', resolve))
      clearTimeout(killer)
    }
  }

  console.log(summary(port))
  if (failures.length === 0) {
    console.log('fuzz: OK')
    return 0
  }

  const logFile = `${tmpdir()}/msgbus-fuzz-${SEED}.log`
  writeFileSync(logFile, serverLog)
  console.log(`\nfuzz: FAILED (seed ${SEED}; replay with --seed ${SEED}; the server's log is in ${logFile})`)
  for (const failure of failures) console.log(`- ${failure}`)
  console.log('\nlast inputs:')
  for (const input of lastInputs) console.log(`  ${input}`)
  return 1
}

process.exitCode = await main()
// Sockets and timers of the well-behaved clients may still be winding down.
setTimeout(() => process.exit(), 100).unref()
