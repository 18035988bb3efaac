// The socket writer over real loopback sockets whose readers do not read:
// handing bytes over at once and giving them to the socket a turn later,
// all of one turn in one write, and what happens to a subscriber that falls
// behind (docs/protocol.md, "Slow subscribers").
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {createServer, connect, type Server, type Socket} from 'node:net'
import {FLUSH_BACKLOG, FLUSH_SLICE, NOT_BEHIND, SocketWriter, type SlowPolicy, type WriteTarget} from '../../src/lib/server/stream/socket-writer.js'

const MiB = 1024 * 1024
const servers: Server[] = []
const sockets: Socket[] = []

/** A connected pair: `writer` is ours, the other end reads only when told (paused). */
async function pair(): Promise<{writer: Socket; reader: Socket}> {
  const server = createServer()
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection')
  const reader = connect((server.address() as {port: number}).port, '127.0.0.1')
  reader.pause()
  const [writer] = (await accepted) as [Socket]
  sockets.push(reader, writer)
  writer.on('error', () => {})
  reader.on('error', () => {})
  return {writer, reader}
}

function target(socket: Socket): WriteTarget {
  return {socket, peer: 'test', channel: 'c', outbox: [], outboxBytes: 0, dropped: 0, behindSince: NOT_BEHIND}
}

interface Seen {
  disconnects: number
  dropStarts: number
  dropEnds: number[]
}

function writer(policy: SlowPolicy, slowTimeoutMs: number, hardBound = 64 * MiB): {writer: SocketWriter; seen: Seen} {
  const seen: Seen = {disconnects: 0, dropStarts: 0, dropEnds: []}
  const events = {
    onSlowDisconnect: () => void seen.disconnects++,
    onDropStart: () => void seen.dropStarts++,
    onDropEnd: (_target: WriteTarget, dropped: number) => void seen.dropEnds.push(dropped),
  }
  return {writer: new SocketWriter({maxPending: 64 * 1024, slowTimeoutMs, hardBound, policy, cutLingerMs: 200}, events), seen}
}

/** Writes until the kernel's buffers are full and bytes wait in the socket. */
async function fillUp(socket: Socket): Promise<void> {
  const chunk = Buffer.alloc(MiB)
  while (socket.writableLength < 256 * 1024) {
    socket.write(chunk)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

const turn = () => new Promise((resolve) => setImmediate(resolve))

describe('unit: the socket writer', () => {
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy()
    for (const server of servers.splice(0)) server.close()
  })

  it('writes of one turn are handed over at once and reach the socket together, in order, a turn later', async () => {
    const {writer: socket, reader} = await pair()
    const {writer: w} = writer('disconnect', 1000)
    const t = target(socket)
    const written: number[] = []
    const write = socket.write.bind(socket)
    socket.write = ((chunk: Buffer) => (written.push(chunk.length), write(chunk))) as typeof socket.write
    assert.equal(w.write(t, Buffer.from('a')), true)
    w.write(t, Buffer.from('bc'))
    w.write(t, Buffer.from('def'))
    assert.deepEqual(written, [], 'nothing reaches the socket within the turn')
    assert.equal(t.outboxBytes, 6)
    assert.equal(w.whenFlushed(), undefined, 'a small backlog holds no publisher')
    await turn()
    assert.deepEqual(written, [6], 'one write for the three')
    assert.equal(w.bytesOut, 6)
    reader.resume()
    let text = ''
    while (text.length < 6) text += ((await once(reader, 'data')) as [Buffer])[0].toString()
    assert.equal(text, 'abcdef')
  })

  it('a publisher that outruns the sockets is held until the backlog is flushed below the limit', async () => {
    const {writer: socket, reader} = await pair()
    reader.resume()
    const {writer: w} = writer('disconnect', 60_000)
    const targets = Array.from({length: 2 * FLUSH_SLICE}, () => target(socket))
    // Twice the limit: after the first slice (half of them) it is still over.
    const big = Buffer.alloc(Math.ceil((2 * FLUSH_BACKLOG) / targets.length) + 1)
    for (const t of targets) w.write(t, big)
    const held = w.whenFlushed()
    assert.ok(held, 'over the limit: the answer waits')
    let released = false
    void held.then(() => (released = true))
    await turn()
    assert.equal(released, false, 'not after the first slice: half the backlog is still there')
    await held
    assert.ok(targets.every((t) => t.outboxBytes === 0))
  })

  it('disconnect: a subscriber behind for the slow timeout is cut; one message alone does not make it slow', async () => {
    const {writer: socket} = await pair()
    const {writer: w, seen} = writer('disconnect', 50)
    const t = target(socket)
    await fillUp(socket)
    assert.equal(w.write(t, Buffer.from('x')), true, 'behind, but not yet for long: written')
    assert.notEqual(t.behindSince, NOT_BEHIND)
    await new Promise((resolve) => setTimeout(resolve, 80))
    assert.equal(w.write(t, Buffer.from('y')), false, 'behind for longer than the timeout: slow')
    assert.equal(seen.disconnects, 1)
    assert.equal(w.slowDisconnects, 1)
    assert.equal(socket.writableEnded, true, 'ended at once: nothing more is written to it')
    // A reader that never reads cannot hold it: destroyed after the linger.
    await once(socket, 'close')
    assert.equal(socket.destroyed, true)
  })

  it('disconnect: the notice of why comes after all the reader had not read, and then the end', async () => {
    const {writer: socket, reader} = await pair()
    const {writer: w} = writer('disconnect', 0)
    const t: WriteTarget = {...target(socket), slowNotice: (unsent) => Buffer.from(`cut with ${unsent} unsent`)}
    await fillUp(socket)
    w.write(t, Buffer.from('x'))
    assert.equal(w.write(t, Buffer.from('y')), false)
    let tail = Buffer.alloc(0)
    reader.on('data', (chunk: Buffer) => (tail = Buffer.concat([tail, chunk]).subarray(-64)))
    reader.resume()
    await once(reader, 'end')
    assert.match(tail.toString('latin1'), /xcut with \d+ unsent$/)
  })

  it('past the hard bound a subscriber is slow at once, however recently it fell behind', async () => {
    const {writer: socket} = await pair()
    const {writer: w, seen} = writer('disconnect', 60_000, 128 * 1024)
    await fillUp(socket)
    assert.equal(w.write(target(socket), Buffer.from('x')), false)
    assert.equal(seen.disconnects, 1)
  })

  it('drop: messages are skipped while it stays over the limit, and counted when it catches up', async () => {
    const {writer: socket, reader} = await pair()
    const {writer: w, seen} = writer('drop', 0)
    const t = target(socket)
    await fillUp(socket)
    w.write(t, Buffer.from('first'))
    for (let i = 0; i < 5; i++) assert.equal(w.write(t, Buffer.from('dropped')), false)
    assert.equal(seen.dropStarts, 1, 'said once, not per message')
    assert.equal(t.dropped, 5)
    assert.equal(w.droppedTotal, 5)
    reader.resume()
    while (socket.writableLength > 0) await turn()
    assert.equal(w.write(t, Buffer.from('back')), true)
    assert.deepEqual(seen.dropEnds, [5])
    assert.equal(t.dropped, 0)
    assert.equal(socket.destroyed, false)
  })

  it('drop: bytes that are not a message (a heartbeat) are skipped while slow, but never counted, so no gap is told of', async () => {
    const {writer: socket, reader} = await pair()
    const {writer: w, seen} = writer('drop', 0)
    let gaps = 0
    const t: WriteTarget = {...target(socket), caughtUp: () => void gaps++}
    await fillUp(socket)
    // Behind: the first write starts its time behind; with no time allowed, the next finds it slow.
    assert.equal(w.write(t, Buffer.from('heartbeat'), false), true)
    for (let i = 0; i < 3; i++) assert.equal(w.write(t, Buffer.from('heartbeat'), false), false)
    assert.deepEqual([t.dropped, w.droppedTotal, seen.dropStarts], [0, 0, 0])
    reader.resume()
    while (socket.writableLength > 0) await turn()
    assert.equal(w.write(t, Buffer.from('message')), true)
    assert.deepEqual([gaps, seen.dropEnds.length], [0, 0])
    // A message skipped, then heartbeats: only the message counts.
    reader.pause()
    await fillUp(socket)
    w.write(t, Buffer.from('first'))
    assert.equal(w.write(t, Buffer.from('dropped')), false)
    assert.equal(w.write(t, Buffer.from('heartbeat'), false), false)
    assert.deepEqual([t.dropped, w.droppedTotal], [1, 1])
  })

  it('a stream that has ended (a poll done, the server stopping) is not written to: what it still holds goes out whole', async () => {
    const {writer: socket, reader} = await pair()
    const {writer: w} = writer('disconnect', 60_000)
    const t = target(socket)
    await fillUp(socket)
    const held = socket.writableLength
    socket.end('the end')
    assert.equal(w.write(t, Buffer.from('too late')), false)
    await turn()
    assert.equal(socket.destroyed, false, 'not failed by a write after its end')
    let received = 0
    let tail = ''
    reader.on('data', (chunk: Buffer) => {
      received += chunk.length
      tail = (tail + chunk.toString('latin1')).slice(-16)
    })
    reader.resume()
    await once(reader, 'end')
    assert.ok(received >= held, `${received} bytes received of the ${held} held and more in the kernel`)
    assert.ok(tail.endsWith('the end'), JSON.stringify(tail))
  })
})
