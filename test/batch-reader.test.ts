// test-sub's native batch reader (src/native/read-many.c, through
// src/lib/load/batch-reader.ts): the sockets ready at once are read together
// and handed to JavaScript in one call. Each socket must get its own bytes,
// whole and in order, however many are ready and however big their data (a
// round gives each ready socket a slot of the shared buffer, down to 2 KiB);
// a peer's FIN and RST end the socket as Node's own reads would; sockets
// closed and opened meanwhile (the kernel reusing their fd numbers) get only
// their own bytes; and the reader holds the process open while, and only
// while, it has a socket. Both ways of reading: an io_uring and recv(2).
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {writeFileSync} from 'node:fs'
import {connect, createServer, type Server, type Socket} from 'node:net'
import {BatchReader, nativeReader} from '../src/lib/load/batch-reader.js'
import {ROOT, tempFolder, until} from './support/harness.js'
import {randomSource} from './support/random.js'

/** A socket of the reader's, and what it got. */
interface Held {
  socket: Socket
  chunks: Buffer[]
  error?: NodeJS.ErrnoException
  closed: Promise<void>
}

function bytesOf(held: Held): Buffer {
  return Buffer.concat(held.chunks)
}

/** A loopback server that hands each connection to `onConnection`, in the order they connect. */
async function peer(onConnection: (socket: Socket) => void): Promise<{server: Server; port: number}> {
  const server = createServer({noDelay: true}, onConnection)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {server, port: (server.address() as {port: number}).port}
}

/** A connected socket, read by `reader` from now on. */
async function open(reader: BatchReader, port: number): Promise<Held> {
  const socket = connect({port, host: '127.0.0.1'})
  socket.pause()
  await once(socket, 'connect')
  // Not once(socket, 'close'): that would reject on the socket's error.
  const held: Held = {socket, chunks: [], closed: new Promise((resolve) => socket.once('close', () => resolve()))}
  socket.on('error', (error: NodeJS.ErrnoException) => (held.error = error))
  assert.ok(
    reader.add(socket, (data, start, end) => held.chunks.push(Buffer.from(data.subarray(start, end)))),
    'the reader takes a connected TCP socket',
  )
  return held
}

const native = nativeReader()

describe('the native batch reader (test-sub)', function () {
  this.timeout(60000)
  const temp = tempFolder('batch-reader')
  const servers: Server[] = []
  const sockets: Socket[] = []
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy()
    for (const server of servers.splice(0)) server.close()
  })

  it('is built with the native sender by npm run build (libuv headers beside node)', () => {
    assert.ok(native.functions, `no native reader: ${native.why}`)
  })

  for (const ring of [true, false]) {
    describe(ring ? 'reads through an io_uring (where the kernel reads as recv(2) would)' : 'a recv(2) a socket', () => {
      let reader: BatchReader
      before(function () {
        if (!native.functions) this.skip()
        reader = new BatchReader(native.functions, ring)
      })

      it("300 sockets sent megabytes in random pieces, all at once: each gets its own bytes whole and in order, then its peer's FIN closes it without an error", async () => {
        const random = randomSource(`batch-reader bulk ${ring}`)
        const sent: Buffer[] = []
        const writers: Array<() => Promise<void>> = []
        const {server, port} = await peer((socket) => {
          sockets.push(socket)
          const index = sent.length
          // Every tenth up to 2 MiB (many 2-64 KiB slots' worth), the rest a few KiB; each its own bytes,
          // at least the 2 that name the connection (1 byte failed the writeUInt16BE below, now and then).
          const size = index % 10 === 0 ? 2 + random.int(2 * 1024 * 1024) : 2 + random.int(8192)
          const bytes = Buffer.alloc(size)
          for (let i = 0; i < size; i++) bytes[i] = (index * 7 + i) & 0xff
          bytes.writeUInt16BE(index, 0)
          sent.push(bytes)
          writers.push(async () => {
            for (let at = 0; at < size; ) {
              const piece = 1 + random.int(256 * 1024)
              if (!socket.write(bytes.subarray(at, at + piece))) await once(socket, 'drain')
              at += piece
              if (random.int(3) === 0) await new Promise((resolve) => setImmediate(resolve))
            }

            socket.end()
          })
        })
        servers.push(server)
        const held: Held[] = []
        // One at a time, so connection i is the peer's i too.
        for (let i = 0; i < 300; i++) {
          held.push(await open(reader, port))
          sockets.push(held[i]!.socket)
          await until(() => sent.length === i + 1, `the peer's connection ${i}`)
        }

        // All at once: the first pieces of all 300 are ready together, more than one io_uring's 256 entries.
        for (const write of writers) void write()
        await Promise.all(held.map((h) => h.closed))
        for (let i = 0; i < held.length; i++) {
          const got = bytesOf(held[i]!)
          assert.equal(got.length, sent[i]!.length, `socket ${i}: ${got.length} bytes of ${sent[i]!.length}`)
          assert.ok(got.equals(sent[i]!), `socket ${i}: its own bytes, in order`)
          assert.equal(held[i]!.error, undefined, `socket ${i} ended by a FIN, not an error`)
        }
      })

      it("a peer's reset ends its socket with ECONNRESET, as Node's read would; the others read on", async () => {
        const peers: Socket[] = []
        const {server, port} = await peer((socket) => {
          sockets.push(socket)
          peers.push(socket)
        })
        servers.push(server)
        const held = [await open(reader, port), await open(reader, port)]
        sockets.push(...held.map((h) => h.socket))
        await until(() => peers.length === 2, 'both connections at the peer')
        peers[0]!.resetAndDestroy()
        await held[0]!.closed
        assert.equal(held[0]!.error?.code, 'ECONNRESET')
        assert.equal(held[0]!.error?.syscall, 'read')
        peers[1]!.write('still here')
        await until(() => bytesOf(held[1]!).toString() === 'still here', 'the other socket reads on')
        assert.equal(held[1]!.socket.destroyed, false)
      })

      it('sockets closed here and opened again (their fd numbers reused at once) get only their own bytes', async () => {
        const random = randomSource(`batch-reader reuse ${ring}`)
        // The peer writes each connection's own tag, on every tick, to whoever is connected.
        const peers = new Map<string, Socket>()
        const {server, port} = await peer((socket) => {
          sockets.push(socket)
          socket.once('data', (tag) => peers.set(tag.toString(), socket))
          socket.on('error', () => {})
          socket.on('close', () => peers.delete([...peers].find(([, s]) => s === socket)?.[0] ?? ''))
        })
        servers.push(server)
        const ticker = setInterval(() => {
          for (const [tag, socket] of peers) socket.write(`${tag};`)
        }, 5)
        try {
          const live = new Map<string, Held>()
          const ended: Array<[string, Held]> = []
          let next = 0
          const openTagged = async () => {
            const tag = `t${next++}`
            const held = await open(reader, port)
            sockets.push(held.socket)
            held.socket.write(tag)
            live.set(tag, held)
          }

          for (let i = 0; i < 40; i++) await openTagged()
          for (let round = 0; round < 10; round++) {
            await new Promise((resolve) => setTimeout(resolve, 20))
            // Close some (their fds freed at once) and open as many (which get those fds).
            const tags = [...live.keys()].filter(() => random.int(3) === 0)
            for (const tag of tags) {
              live.get(tag)!.socket.destroy()
              ended.push([tag, live.get(tag)!])
              live.delete(tag)
            }

            for (let i = 0; i < tags.length; i++) await openTagged()
          }

          await until(() => [...live.values()].every((h) => bytesOf(h).length > 0), 'every open socket got its tag')
          for (const [tag, held] of [...live, ...ended]) {
            const pieces = bytesOf(held).toString().split(';').filter(Boolean)
            assert.ok(pieces.every((piece) => piece === tag), `${tag} got only its own tag: ${[...new Set(pieces)].join(', ')}`)
          }
        } finally {
          clearInterval(ticker)
        }
      })
    })
  }

  it('holds the process open while it has a socket, and not after', async function () {
    if (!native.functions) this.skip()
    const {server, port} = await peer((socket) => {
      sockets.push(socket)
      // Nothing else keeps the child alive meanwhile: only the reader can.
      setTimeout(() => socket.end('late'), 1000)
    })
    servers.push(server)
    const file = temp('child.mts')
    writeFileSync(
      file,
      `import {connect} from 'node:net'
import {batchReader} from ${JSON.stringify(`${ROOT}src/lib/load/batch-reader.ts`)}
const socket = connect({port: ${port}, host: '127.0.0.1'})
socket.pause()
socket.once('connect', () => {
  if (!batchReader()!.add(socket, (data, start, end) => process.stdout.write(data.subarray(start, end)))) throw new Error('not taken')
})
socket.on('close', () => process.stdout.write(' closed'))
`,
    )
    const child = spawn(process.execPath, ['--import', 'tsx/esm', file], {cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit']})
    let out = ''
    child.stdout.on('data', (data: Buffer) => (out += data))
    const [code] = (await Promise.race([once(child, 'exit'), new Promise((resolve) => setTimeout(() => resolve(['still running']), 20000))])) as [unknown]
    child.kill()
    assert.equal(out, 'late closed', 'alive until the late bytes came, then out')
    assert.equal(code, 0)
  })
})
