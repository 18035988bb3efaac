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
import {createBus, type BusServer, type BusServerOptions} from '../../src/lib/index.js'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const BIN = `${ROOT}bin/run.js`

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

/** A raw TCP client: writes what it is given, keeps every byte it receives. */
export class RawClient {
  readonly socket: Socket
  data = Buffer.alloc(0)
  closed = false
  private waiters: Array<() => void> = []

  constructor(port: number, host = '127.0.0.1') {
    this.socket = connect(port, host)
    this.socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk])
      this.wake()
    })
    this.socket.on('close', () => {
      this.closed = true
      this.wake()
    })
    this.socket.on('error', () => {})
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter()
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

  /** Waits until the received bytes satisfy the test, or fails after the timeout. */
  async until(test: (text: string) => boolean, timeoutMs = 5000, what = 'expected bytes'): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const text = this.text()
      if (test(text)) return text
      if (this.closed) throw new Error(`connection closed before ${what}; got ${JSON.stringify(text.slice(-400))}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(text.slice(-400))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  async untilClosed(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error(`connection still open; got ${JSON.stringify(this.text().slice(-400))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }

    return this.text()
  }

  close(): void {
    this.socket.destroy()
  }
}

/** Removes chunked transfer framing; returns the payload so far and whether the last chunk came. */
export function dechunk(bytes: Buffer): {payload: Buffer; ended: boolean} {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', at)
    if (lineEnd < 0) break
    const size = Number.parseInt(bytes.subarray(at, lineEnd).toString('latin1'), 16)
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

  static async open(server: BusServer, path: string, extraHeaders = ''): Promise<Subscription> {
    const client = await RawClient.open(portOf(server), `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${extraHeaders}\r\n`)
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
    const deadline = Date.now() + 10000
    const https = args.some((arg) => arg === '-c' || arg.startsWith('--cert'))
    while (!/listen HTTP on/.test(serve.stderr) || (https && !/listen HTTPS on/.test(serve.stderr))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not start: ${serve.stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }

    return serve
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
