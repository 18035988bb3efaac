// The fan-out's ways to the sockets: the native sender (a slice of sockets a
// call, src/native/send-many.c), its sends entering the kernel together
// through an io_uring or one send(2) each (MSGBUS_NATIVE_SEND=send), and
// Node's streams (MSGBUS_NATIVE_SEND=0). Each must give every subscriber every byte in order,
// also when a socket takes only part of a message or none of it, when a reader
// is gone, and never bypass TLS.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {existsSync, mkdtempSync} from 'node:fs'
import {createRequire} from 'node:module'
import {connect, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {connect as tlsConnect} from 'node:tls'
import {NATIVE_MODULE} from '../src/lib/assets.js'
import {dechunk, escapeRegExp, RawClient, ServeProcess, sleep, splitParts, until} from './support/harness.js'
import {randomSource} from './support/random.js'
import {makeCertificate} from './support/tls.js'

/** A subscriber on a plain or TLS socket that keeps its bytes as a list (no copy a chunk: megabytes arrive). */
class Collector {
  private readonly chunks: Buffer[] = []
  length = 0
  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.length += chunk.length
    })
    socket.on('error', () => {})
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks)
  }

  /** The bodies of the parts so far, read with the boundary of the response's head. */
  bodies(): Buffer[] {
    const all = this.bytes()
    const headEnd = all.indexOf('\r\n\r\n')
    if (headEnd < 0) return []
    const boundary = /boundary="?([^";\r\n]+)/.exec(all.subarray(0, headEnd).toString('latin1'))?.[1]
    assert.ok(boundary, `a multipart head: ${all.subarray(0, 300).toString('latin1')}`)
    return splitParts(dechunk(all.subarray(headEnd + 4)).payload, boundary).map((part) => part.body)
  }
}

function subscribe(port: number, channel: string, tls = false): Promise<Collector> {
  const socket = tls ? tlsConnect({port, host: '127.0.0.1', rejectUnauthorized: false}) : connect(port, '127.0.0.1')
  socket.write(`GET /msgbus/${channel} HTTP/1.1\r\nHost: x\r\n\r\n`)
  const collector = new Collector(socket)
  return once(socket, tls ? 'secureConnect' : 'connect').then(() => collector)
}

/**
 * Publishes the bodies on one keep-alive connection and waits for every
 * answer: back to back, or `oneByOne`, each after the last one's answer, so
 * that each flush finds one message a socket (no coalescing past 64 KiB).
 */
async function publishAll(port: number, channel: string, bodies: Buffer[], oneByOne = false): Promise<void> {
  const publisher = await RawClient.open(port)
  const answers = (n: number) => publisher.until((text) => (text.match(/HTTP\/1\.1 204/g) ?? []).length === n, 30000, `${n} answers`)
  for (const [i, body] of bodies.entries()) {
    publisher.socket.write(Buffer.concat([Buffer.from(`POST /msgbus/${channel} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`), body]))
    if (oneByOne) await answers(i + 1)
  }

  await answers(bodies.length)
  publisher.close()
}

async function untilAll(subscribers: Collector[], count: number, what: string): Promise<void> {
  await until(() => subscribers.every((s) => s.bodies().length >= count), () => `${what}: ${subscribers.map((s) => s.bodies().length).join(',')} of ${count} bodies`, {timeoutMs: 30000, everyMs: 200})
}

function assertSameBodies(got: Buffer[], sent: Buffer[], who: string): void {
  assert.equal(got.length, sent.length, `${who}: ${got.length} bodies of ${sent.length}`)
  for (let i = 0; i < sent.length; i++) assert.ok(got[i]!.equals(sent[i]!), `${who}: body ${i} (${sent[i]!.length} bytes) differs`)
}

/**
 * Bodies of 1 B to `most` bytes, each a different byte pattern, as the run's
 * seed draws their sizes. Under 64 KiB, each goes to a socket that has nothing
 * queued by the native sender when there is one (larger ones through Node).
 */
function bodiesOf(label: string, count: number, most = 48 * 1024): Buffer[] {
  const random = randomSource(label)
  return Array.from({length: count}, (_, i) => Buffer.alloc(1 + random.int(most), `${i}:${label}|`))
}

/**
 * Why this machine gives the native sender no io_uring (an old kernel,
 * kernel.io_uring_disabled, a seccomp profile), asked of the module itself;
 * undefined when it does. The server then says the same reason and sends a
 * send(2) a socket, which the test names in its title.
 */
const noRing = (() => {
  try {
    return (createRequire(import.meta.url)(NATIVE_MODULE) as {useRing(): string | undefined}).useRing()
  } catch (error) {
    return `not loaded: ${(error as Error).message.split('\n')[0]}`
  }
})()

const modes = [
  noRing === undefined
    ? {name: 'the native sender, through an io_uring', env: {}, line: /writer native sender \(io_uring, /}
    : {name: `the native sender (no io_uring here: ${noRing})`, env: {}, line: new RegExp(`writer native sender \\(send\\(2\\) a socket, many sockets a call: ${escapeRegExp(noRing)}\\)`)},
  {name: 'the native sender, a send(2) a socket', env: {MSGBUS_NATIVE_SEND: 'send'}, line: /writer native sender \(send\(2\) a socket, many sockets a call: MSGBUS_NATIVE_SEND=send\)/},
  {name: "Node's streams", env: {MSGBUS_NATIVE_SEND: '0'}, line: /writer Node streams \(native sender: MSGBUS_NATIVE_SEND=0\)/},
]

describe('writes to subscribers', function () {
  this.timeout(90000)
  let serve: ServeProcess | undefined
  afterEach(() => serve?.child.kill('SIGKILL'))

  it('the native sender is built by npm run build where there is a C compiler', () => {
    assert.ok(existsSync(NATIVE_MODULE), `${NATIVE_MODULE}: scripts/test-tools.sh installs gcc, and npm run build compiles it`)
  })

  for (const mode of modes) {
    describe(`through ${mode.name}`, () => {
      async function start(args: string[] = []): Promise<number> {
        serve = await ServeProcess.start(['--port', '0', '--address', '127.0.0.1', '--history', '0', ...args], mode.env)
        await serve.logged(mode.line)
        return Number(/listen HTTP on [^:]+:(\d+)/.exec(serve.stderr)![1])
      }

      it('every subscriber gets every byte in order, one of them stalled while megabytes go out (sockets that take part of a message, or none)', async () => {
        const port = await start(['--max-pending', '64MiB', '--slow-timeout', '60'])
        const subscribers = await Promise.all(Array.from({length: 8}, () => subscribe(port, 'bytes')))
        const stalled = subscribers[0]!
        stalled.socket.pause()
        await until(() => subscribers.slice(1).every((s) => s.length > 0), 'the streams to open')
        // ~12 MiB: more than a stalled loopback socket's buffers take, so its sends come back short, then refused (EAGAIN).
        const sent = bodiesOf(`native-send ${mode.name}`, 500)
        await publishAll(port, 'bytes', sent, true)
        await untilAll(subscribers.slice(1), sent.length, 'the readers')
        stalled.socket.resume()
        await untilAll([stalled], sent.length, 'the stalled reader')
        for (const [i, s] of subscribers.entries()) assertSameBodies(s.bodies(), sent, `subscriber ${i}`)
      })

      it('a reader that is gone (reset) costs the others nothing', async () => {
        const port = await start()
        const subscribers = await Promise.all(Array.from({length: 20}, () => subscribe(port, 'gone')))
        await until(() => subscribers.every((s) => s.length > 0), 'the streams to open')
        const sent = bodiesOf(`native-send gone ${mode.name}`, 40)
        const publishing = publishAll(port, 'gone', sent)
        await sleep(5)
        for (const s of subscribers.slice(0, 5)) s.socket.resetAndDestroy()
        await publishing
        const readers = subscribers.slice(5)
        await untilAll(readers, sent.length, 'the readers that stayed')
        for (const [i, s] of readers.entries()) assertSameBodies(s.bodies(), sent, `subscriber ${i + 5}`)
        assert.equal(serve!.child.exitCode, null, 'the server still runs')
      })

      it('TLS subscribers get their messages encrypted (never sent past TLS) and intact', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'msgbus-native-tls-'))
        const {certFile, keyFile} = await makeCertificate(dir)
        await start(['--cert', certFile, '--key', keyFile, '--ssl-port', '0'])
        const httpsPort = Number(/listen HTTPS on [^:]+:(\d+)/.exec(serve!.stderr)![1])
        const plainPort = Number(/listen HTTP on [^:]+:(\d+)/.exec(serve!.stderr)![1])
        const secure = await Promise.all(Array.from({length: 6}, () => subscribe(httpsPort, 'mixed', true)))
        const plain = await Promise.all(Array.from({length: 6}, () => subscribe(plainPort, 'mixed')))
        await until(() => [...secure, ...plain].every((s) => s.length > 0), 'the streams to open')
        const sent = bodiesOf(`native-send tls ${mode.name}`, 20, 160 * 1024)
        await publishAll(plainPort, 'mixed', sent)
        await untilAll([...secure, ...plain], sent.length, 'TLS and plain readers')
        for (const [i, s] of [...secure, ...plain].entries()) assertSameBodies(s.bodies(), sent, `${i < secure.length ? 'TLS' : 'plain'} subscriber ${i}`)
      })
    })
  }
})
