// Test helpers that talk to a real server over real sockets.
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {request as httpRequest, type IncomingHttpHeaders} from 'node:http'
import {mkdtempSync, rmSync} from 'node:fs'
import {connect, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {createBus, type BusServer, type BusServerOptions, type MessageInput} from '../../src/lib/index.js'
import type {RandomSource} from '../../tools/random.js'
import {Changes, sleep, until} from '../../tools/wait.js'

// The one polling helper and the one sleep (for pacing only), for every test.
export {sleep, until}

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = `${ROOT}bin/run.js`

/** A loopback port nothing listens on now: for a server that must come back on the same one, or a refused connection. */
export {freePort} from '../../tools/processes.js'

const running = new Set<BusServer>()

/** A bus in this process on a free loopback port; stopped by stopAll(). */
export async function startBus(options: BusServerOptions = {}): Promise<BusServer> {
  const server = createBus({port: 0, sslPort: 0, address: '127.0.0.1', ...options})
  await server.start()
  running.add(server)
  return server
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((server) => server.stop(100)))
  running.clear()
}

export function portOf(server: BusServer): number {
  return server.addresses!.http.port
}

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/** One HTTP request with Node's client; resolves with the whole reply. */
export function request(
  url: string,
  options: {method?: string; headers?: Record<string, string>; body?: Buffer | string} = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {method: options.method ?? 'GET', headers: options.headers, agent: false}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks)}))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

export function publish(server: BusServer, channel: string, body: Buffer | string, type = 'text/plain', headers: Record<string, string> = {}): Promise<Reply> {
  return request(`${server.url()}/msgbus/${channel}`, {method: 'POST', headers: {'Content-Type': type, ...headers}, body})
}

/** Publishes `bodies` to `channel` one after the other (each must be accepted); resolves with their ids. */
export async function publishEach(server: BusServer, channel: string, bodies: string[]): Promise<string[]> {
  const ids: string[] = []
  for (const body of bodies) {
    const reply = await publish(server, channel, body)
    assert.equal(reply.status, 204, reply.body.toString())
    ids.push(String(reply.headers['msgbus-id']))
  }

  return ids
}

/**
 * Closes every subscription stream from the server's side, then has the bus
 * accept `messages` before any client can come back: the bus puts a message
 * in its history at once, so only a resume brings these to the subscribers.
 * Returns the sockets it closed, and the ids the messages got.
 */
export function dropStreams(server: BusServer, messages: MessageInput[] = []): {dropped: Socket[]; ids: Promise<string[]>} {
  const dropped = [...server.subscriptions].map((stream) => stream.socket)
  for (const socket of dropped) socket.destroy()
  const deliveries = messages.map((message) => server.bus.publish(message))
  return {dropped, ids: Promise.all(deliveries).then((done) => done.map(({message}) => message.id))}
}

/** A text/plain message for dropStreams(). */
export function textMessage(channel: string, body: string, type = 'text/plain'): MessageInput {
  return {channel, type, essence: 'text/plain', body: Buffer.from(body)}
}

/** The server's streams that are none of `dropped`: those that came (back) since. */
export function streamsBesides(server: BusServer, dropped: Iterable<Socket>): number {
  const gone = new Set(dropped)
  return [...server.subscriptions].filter((stream) => !gone.has(stream.socket)).length
}

/** A raw TCP client: writes what it is given, keeps every byte it receives. */
export class RawClient {
  readonly socket: Socket
  data = Buffer.alloc(0)
  closed = false
  private readonly changes = new Changes()

  constructor(port: number, host = '127.0.0.1') {
    this.socket = connect(port, host)
    this.socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk])
      this.changes.notify()
    })
    this.socket.on('close', () => {
      this.closed = true
      this.changes.notify()
    })
    this.socket.on('error', () => {})
  }

  static async open(port: number, text?: string, host?: string): Promise<RawClient> {
    const client = new RawClient(port, host)
    await once(client.socket, 'connect')
    if (text !== undefined) client.socket.write(text)
    return client
  }

  text(): string {
    return this.data.toString('latin1')
  }

  /** Waits until the received bytes satisfy the test, or fails after the timeout (or when the connection closes first). */
  async until(test: (text: string) => boolean, timeoutMs = 5000, what = 'expected bytes'): Promise<string> {
    await until(() => test(this.text()), () => `${what}; got ${JSON.stringify(this.text().slice(-400))}`, {
      timeoutMs,
      everyMs: 100,
      changes: this.changes,
      stop: () => this.closed && 'connection closed',
    })
    return this.text()
  }

  async untilClosed(timeoutMs = 5000): Promise<string> {
    await until(() => this.closed, () => `the connection to close; got ${JSON.stringify(this.text().slice(-400))}`, {timeoutMs, everyMs: 100, changes: this.changes})
    return this.text()
  }

  close(): void {
    this.socket.destroy()
  }
}

/**
 * Writes `bytes` to `socket` in slices of 1 to `maxSlice` bytes, with pauses
 * of 0 to `maxPauseMs` ms between them, as `random` draws them: a recorded
 * stream replayed the way a slow network may cut it.
 */
export async function writeInSlices(socket: Socket, bytes: Buffer, random: RandomSource, maxSlice: number, maxPauseMs: number): Promise<void> {
  for (let at = 0; at < bytes.length && !socket.destroyed; ) {
    const size = 1 + random.int(maxSlice)
    socket.write(bytes.subarray(at, at + size))
    at += size
    await sleep(random.int(maxPauseMs + 1))
  }
}

/** `text` as a regular expression that matches it literally. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Removes chunked transfer framing; returns the payload so far and whether the last chunk came. */
export function dechunk(bytes: Buffer): {payload: Buffer; ended: boolean} {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', at)
    if (lineEnd < 0) break
    const line = bytes.subarray(at, lineEnd).toString('latin1')
    // A stream out of step (bytes lost or doubled) must fail the test, not loop here on a size that is no number.
    if (!/^[0-9a-f]+(;.*)?$/i.test(line)) throw new Error(`not a chunk-size line at byte ${at}: ${JSON.stringify(line.slice(0, 40))}`)
    const size = Number.parseInt(line, 16)
    if (size === 0) return {payload: Buffer.concat(parts), ended: true}
    if (lineEnd + 2 + size + 2 > bytes.length) break
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }

  return {payload: Buffer.concat(parts), ended: false}
}

export interface Part {
  headers: Record<string, string>
  body: Buffer
}

/**
 * Splits a multipart payload of ours (every part with Content-Length) into
 * parts; an independent reader, so the tests do not trust the server's framing code.
 */
export function splitParts(payload: Buffer, boundary: string): Part[] {
  const parts: Part[] = []
  const opening = `--${boundary}\r\n`
  if (payload.length === 0) return parts
  if (payload.subarray(0, opening.length).toString('latin1') !== opening) throw new Error('stream does not start with the delimiter')
  let at = opening.length
  for (;;) {
    const headEnd = payload.indexOf('\r\n\r\n', at)
    if (headEnd < 0) break
    const headers: Record<string, string> = {}
    for (const line of payload.subarray(at, headEnd).toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':')
      if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
    }

    if (headers['content-length'] === undefined) break
    const length = Number(headers['content-length'])
    const bodyStart = headEnd + 4
    const delimiter = `\r\n--${boundary}\r\n`
    if (bodyStart + length + delimiter.length > payload.length) break
    const after = payload.subarray(bodyStart + length, bodyStart + length + delimiter.length).toString('latin1')
    if (after !== delimiter) throw new Error(`part not followed by the delimiter: ${JSON.stringify(after)}`)
    parts.push({headers, body: payload.subarray(bodyStart, bodyStart + length)})
    at = bodyStart + length + delimiter.length
  }

  return parts
}

/** A subscriber on a raw socket speaking HTTP/1.1, with its parts decoded. */
export class Subscription {
  private constructor(readonly client: RawClient) {}

  /** A subscription to `path` on the bus in this process, or on the server at a port (`msgbus serve` in its own process). */
  static async open(server: BusServer | number, path: string, extraHeaders = ''): Promise<Subscription> {
    const port = typeof server === 'number' ? server : portOf(server)
    const client = await RawClient.open(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extraHeaders}\r\n`)
    const subscription = new Subscription(client)
    await client.until((text) => text.includes('\r\n\r\n') && subscription.payload().length > 0, 5000, 'the stream to open')
    return subscription
  }

  get head(): string {
    const text = this.client.text()
    return text.slice(0, text.indexOf('\r\n\r\n') + 4)
  }

  get boundary(): string {
    return /boundary=([^\r\n;]+)/.exec(this.head)![1]
  }

  payload(): Buffer {
    const headEnd = this.client.data.indexOf('\r\n\r\n')
    return dechunk(this.client.data.subarray(headEnd + 4)).payload
  }

  parts(): Part[] {
    return splitParts(this.payload(), this.boundary)
  }

  async waitParts(count: number, timeoutMs = 5000): Promise<Part[]> {
    await this.client.until(() => this.parts().length >= count, timeoutMs, `${count} parts`)
    return this.parts()
  }

  bodies(): string[] {
    return this.parts().map((part) => part.body.toString())
  }

  /**
   * Waits for the part whose body is `marker`, then returns every part
   * before it: a test that publishes a marker after whatever it checks learns
   * that nothing else came, without waiting a guessed while (a channel's
   * messages arrive in the order published).
   */
  async before(marker: string, timeoutMs = 5000): Promise<Part[]> {
    await this.client.until(() => this.bodies().includes(marker), timeoutMs, `the marker ${JSON.stringify(marker)}`)
    const parts = this.parts()
    return parts.slice(0, parts.findIndex((part) => part.body.toString() === marker))
  }

  close(): void {
    this.client.close()
  }
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** The JSON document a `--json` run prints last on stdout. */
export function documentOf<T>(result: RunResult): T {
  const last = result.stdout.trimEnd().split('\n').at(-1) ?? ''
  try {
    return JSON.parse(last) as T
  } catch {
    throw new Error(`no JSON document at the end of stdout ${JSON.stringify(result.stdout.slice(-500))}; stderr ${JSON.stringify(result.stderr)}`)
  }
}

/** Runs a program to its end, stdin closed unless given. */
export async function run(command: string, args: string[], options: {input?: Buffer | string; env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<RunResult> {
  const child = spawn(command, args, {env: {...process.env, NO_COLOR: '1', ...options.env}, stdio: ['pipe', 'pipe', 'pipe']})
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
  child.stdin.on('error', () => {})
  child.stdin.end(options.input)
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 15000)
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  return {code, signal, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString()}
}

/** `msgbus ARGS` to its end: the built CLI (bin/run.js, which runs dist/), in its own process, as users run it. */
export function msgbus(args: string[], options: {input?: Buffer | string; env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], options)
}

/**
 * `msgbus ARGS` in the background (dump, test-sub, test-pub, send --lines):
 * its output kept as it comes, its exit awaited; stdin closed, or given to
 * the test with `{stdin: true}`. killAll() ends every one still running
 * (after each test).
 */
export class MsgbusProcess {
  static readonly running = new Set<MsgbusProcess>()
  readonly child: ChildProcess
  private chunks: Buffer[] = []
  stderr = ''
  /** Every output stream has ended (so all it wrote has been read). */
  closed = false
  readonly exited: Promise<RunResult>
  private readonly changes = new Changes()

  constructor(args: string[], env: NodeJS.ProcessEnv = {}, {stdin = false}: {stdin?: boolean} = {}) {
    this.child = spawn(process.execPath, [BIN, ...args], {env: {...process.env, NO_COLOR: '1', ...env}, stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe']})
    this.child.stdin?.on('error', () => {})
    MsgbusProcess.running.add(this)
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.changes.notify()
    })
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString()
      this.changes.notify()
    })
    this.exited = once(this.child, 'close').then(([code, signal]) => {
      this.closed = true
      this.changes.notify()
      MsgbusProcess.running.delete(this)
      return {code: code as number | null, signal: signal as NodeJS.Signals | null, stdout: this.stdout, stderr: this.stderr}
    })
  }

  static killAll(): void {
    for (const process of MsgbusProcess.running) process.child.kill('SIGKILL')
    MsgbusProcess.running.clear()
  }

  get output(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0] ?? Buffer.alloc(0)
  }

  get stdout(): string {
    return this.output.toString()
  }

  /** The complete lines on stdout so far. */
  lines(): string[] {
    return this.stdout.split('\n').slice(0, -1)
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Waits until `test` holds; fails after the timeout, or at once when the process has ended without it. */
  until(test: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    return until(test, () => `${what}; stdout ${JSON.stringify(this.stdout.slice(-300))}, stderr ${JSON.stringify(this.stderr.slice(-500))}`, {
      timeoutMs,
      changes: this.changes,
      stop: () => this.closed && `msgbus ${this.child.spawnargs[2]} exited (${this.child.exitCode ?? this.child.signalCode})`,
    })
  }

  async untilLines(count: number, timeoutMs = 5000): Promise<string[]> {
    await this.until(() => this.lines().length >= count, `${count} lines`, timeoutMs)
    return this.lines()
  }

  /** Waits for the exit, failing after the timeout. */
  async exit(timeoutMs = 10000): Promise<RunResult> {
    await until(() => this.closed, () => `msgbus ${this.child.spawnargs[2]} to exit; stderr ${JSON.stringify(this.stderr.slice(-500))}`, {timeoutMs, changes: this.changes})
    return this.exited
  }
}

/** Runs curl with the given arguments. */
export function curl(args: string[], options: {input?: Buffer | string; timeoutMs?: number} = {}): Promise<RunResult> {
  return run('curl', ['-sS', ...args], options)
}

/** `msgbus serve` in its own process; resolves once it logs where it listens. */
export class ServeProcess {
  stderr = ''
  private constructor(readonly child: ChildProcess) {
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString()
    })
  }

  /** `openFiles` runs it under that `ulimit -n` (the shell execs node, so the pid is the server's). */
  static async start(args: string[], env: NodeJS.ProcessEnv = {}, options: {openFiles?: number} = {}): Promise<ServeProcess> {
    const command = [process.execPath, BIN, 'serve', ...args]
    const spawnEnv = {...process.env, NO_COLOR: '1', ...env}
    const child =
      options.openFiles === undefined
        ? spawn(command[0], command.slice(1), {env: spawnEnv, stdio: ['ignore', 'pipe', 'pipe']})
        : spawn('sh', ['-c', `ulimit -n ${options.openFiles} && exec "$@"`, 'sh', ...command], {env: spawnEnv, stdio: ['ignore', 'pipe', 'pipe']})
    const serve = new ServeProcess(child)
    const https = args.some((arg) => arg === '-c' || arg.startsWith('--cert'))
    await until(() => /listen HTTP on/.test(serve.stderr) && (!https || /listen HTTPS on/.test(serve.stderr)), () => `serve to listen: ${serve.stderr}`, {
      timeoutMs: 10000,
      stop: () => (child.exitCode !== null || child.signalCode !== null) && `serve exited (${child.exitCode ?? child.signalCode})`,
    })
    return serve
  }

  /** Waits for a line of its log (stderr) that matches `pattern`: it may come in a later write than the one before it. */
  async logged(pattern: RegExp, timeoutMs = 5000): Promise<void> {
    await until(() => pattern.test(this.stderr), () => `${pattern} in its log: ${this.stderr}`, {
      timeoutMs,
      stop: () => (this.child.exitCode !== null || this.child.signalCode !== null) && `serve exited (${this.child.exitCode ?? this.child.signalCode})`,
    })
  }

  port(kind: 'HTTP' | 'HTTPS' = 'HTTP'): number {
    return Number(new RegExp(`listen ${kind} on \\S*:(\\d+)`).exec(this.stderr)![1])
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{code: number | null; ms: number}> {
    const started = Date.now()
    if (this.child.exitCode !== null || this.child.signalCode !== null) return {code: this.child.exitCode, ms: 0}
    this.child.kill(signal)
    const [code] = (await once(this.child, 'exit')) as [number | null]
    return {code, ms: Date.now() - started}
  }
}

function idPair(id: string): [number, number] {
  const match = /^(\d+)-(\d+)$/.exec(id)
  assert.ok(match, `message id ${id} is <unix-ms>-<seq>`)
  return [Number(match[1]), Number(match[2])]
}

/** Message ids must increase, compared as a pair of integers. */
export function assertIncreasing(list: string[]): void {
  for (let i = 1; i < list.length; i++) {
    const [ms1, seq1] = idPair(list[i - 1])
    const [ms2, seq2] = idPair(list[i])
    assert.ok(ms2 > ms1 || (ms2 === ms1 && seq2 > seq1), `${list[i]} after ${list[i - 1]}`)
  }
}

/**
 * A temporary folder for the tests of the describe block it is called in:
 * made before them, removed after. Returns a function that names paths in
 * it (`inTemp('a.txt')`; `inTemp()` is the folder).
 */
export function tempFolder(prefix: string): (...names: string[]) => string {
  let folder = ''
  before(() => {
    folder = mkdtempSync(join(tmpdir(), prefix))
  })
  after(() => rmSync(folder, {recursive: true, force: true}))
  return (...names) => join(folder, ...names)
}
