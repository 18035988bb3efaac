// `--history-dir` end to end: the server in this process across stop and
// start, and `msgbus serve` in its own process killed with SIGKILL (after
// its publishes were answered, and in the middle of them), then started
// again on the same folder. What is asserted is what the server promised:
// every message answered with 204 is read back, in order, and ids go on
// after the newest; never how fast this machine did it.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {appendFileSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {compareMessageIds} from '../src/lib/bus/message-id.js'
import {encodeRecord} from '../src/lib/history/record.js'
import {SegmentStore} from '../src/lib/history/segment-store.js'
import type {Logger} from '../src/lib/index.js'
import {subscribe} from '../src/lib/client/subscribe.js'
import {assertIncreasing, freePort, msgbus, request, ServeProcess, sleep, startBus, stopAll, RawClient, tempFolder, until} from './support/harness.js'
import {randomSource} from './support/random.js'

const LOTS = {count: 1_000_000, bytes: 0, ageMs: 0}

function recording(): Logger & {lines: string[]} {
  const lines: string[] = []
  return {level: 0, lines, log: (_level, tag, text) => lines.push(`${tag} ${text}`), warn: (tag, text) => lines.push(`${tag} ${text}`)}
}

async function post(port: number, channel: string, body: string): Promise<{status: number; id: string | undefined}> {
  const reply = await request(`http://127.0.0.1:${port}/msgbus/${channel}`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body})
  return {status: reply.status, id: reply.headers['msgbus-id'] as string | undefined}
}

/** Every message the server holds, through a one-shot NDJSON read of its history. */
async function polled(port: number): Promise<Array<{id: string; channel: string; body: string}>> {
  const reply = await request(`http://127.0.0.1:${port}/msgbus/?since=all&format=ndjson&poll=1`)
  assert.equal(reply.status, 200, reply.body.toString())
  return reply.body
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as {id: string; channel: string; body: string})
}

/** What a store opened on `dir` gives back, every limit off. */
async function onDisk(dir: string): Promise<{ids: string[]; horizon: string; lines: string[]}> {
  const logger = recording()
  const store = new SegmentStore(dir, 'always', logger)
  const {messages, horizon} = await store.open(LOTS, Date.now())
  await store.close()
  return {ids: messages.map((m) => m.id), horizon, lines: logger.lines}
}

describe('history on disk', function () {
  this.timeout(60_000)
  const inTemp = tempFolder('msgbus-history-disk-')
  let serial = 0
  const freshDir = () => inTemp(`d${serial++}`)
  const started: ServeProcess[] = []

  afterEach(async () => {
    await stopAll()
    await Promise.all(started.splice(0).map((s) => s.stop('SIGKILL')))
  })

  async function serve(dir: string, args: string[] = []): Promise<ServeProcess> {
    const server = await ServeProcess.start(['--port', '0', '--address', '127.0.0.1', '--history-dir', dir, ...args])
    started.push(server)
    return server
  }

  it('pipelined publishes: one that awaits its sync does not stop --body-timeout watching the stalled body behind it @slow', async () => {
    const server = await startBus({historyDir: freshDir(), bodyTimeout: 1, logger: recording()})
    const first = 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi'
    const stalled = 'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nabc'
    const client = await RawClient.open(server.addresses!.http.port, first + stalled)
    await client.until((text) => text.startsWith('HTTP/1.1 204 '), 5000, 'the first publish answered')
    // The bound is the failure: a connection nobody watches stays open for good.
    await client.untilClosed(15_000)
    assert.equal(server.bus.log.size, 1)
  })

  it('in process: stopped and started again on its folder, the log holds what it held, and ids go on after it', async () => {
    const dir = freshDir()
    const first = await startBus({historyDir: dir, logger: recording()})
    const horizon = first.bus.log.horizon
    const ids: string[] = []
    for (let i = 0; i < 20; i++) {
      const reply = await post(first.addresses!.http.port, i % 2 ? 'odd' : 'even', `message ${i}`)
      assert.equal(reply.status, 204)
      ids.push(reply.id!)
    }

    await stopAll()
    const logger = recording()
    const second = await startBus({historyDir: dir, logger})
    const {log} = second.bus
    assert.equal(log.size, 20)
    assert.equal(log.horizon, horizon)
    assert.deepEqual(
      Array.from({length: log.size}, (_, k) => log.at(log.first + k).id),
      ids,
    )
    assert.ok(logger.lines.includes(`history 20 messages from ${dir} (oldest ${ids[0]}, horizon ${horizon})`), logger.lines.join('\n'))
    const replayed = await polled(second.addresses!.http.port)
    assert.deepEqual(
      replayed.map((m) => [m.id, m.channel, m.body]),
      ids.map((id, i) => [id, i % 2 ? 'odd' : 'even', `message ${i}`]),
    )
    const next = await post(second.addresses!.http.port, 'even', 'after the restart')
    assert.ok(compareMessageIds(next.id!, ids.at(-1)!) > 0, `${next.id} after ${ids.at(-1)}`)
  })

  it('in process: --history-dir with --history 0 is refused; a folder in use is refused', async () => {
    await assert.rejects(startBus({historyDir: freshDir(), history: 0}), {code: 'ERR_MSGBUS_OPTION_INVALID', message: '--history-dir needs --history above 0'})
    const dir = freshDir()
    await startBus({historyDir: dir})
    await assert.rejects(startBus({historyDir: dir}), {code: 'ERR_MSGBUS_HISTORY_FAILED', message: `history dir ${dir} is in use by process ${process.pid} (this one)`})
  })

  it('a write that fails: the publish is a 500 saying why, its subscribers have it all the same, and the next publish is written', async () => {
    const dir = freshDir()
    const logger = recording()
    const server = await startBus({historyDir: dir, logger})
    const port = server.addresses!.http.port
    assert.equal((await post(port, 'news', 'before')).status, 204)
    const subscription = await RawClient.open(port, 'GET /msgbus/news?format=ndjson HTTP/1.1\r\nHost: x\r\n\r\n')
    await subscription.until((text) => text.includes('\r\n\r\n'), 5000, 'the stream to open')
    // The segment's file taken from under the store: its next write fails (EBADF), as a full disk's would (ENOSPC).
    await (server.bus as unknown as {link: {store: {writer: {target: {handle: {close(): Promise<void>}}}}}}).link.store.writer.target.handle.close()
    const failed = await request(`http://127.0.0.1:${port}/msgbus/news`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: 'lost'})
    assert.equal(failed.status, 500)
    assert.equal(failed.body.toString(), `delivered to 1 subscribers, but not written to the history: history dir ${dir}: cannot write a message: EBADF\n`)
    await subscription.until((text) => text.includes('"body":"lost"'), 5000, 'the message, delivered')
    assert.ok(logger.lines.includes(`history history dir ${dir}: cannot write a message: EBADF`), logger.lines.join('\n'))
    assert.equal((await post(port, 'news', 'after')).status, 204)
    subscription.close()
    await stopAll()
    assert.equal((await onDisk(dir)).ids.length, 2, 'before and after')
  })

  it('msgbus serve: a second server on the same folder exits with one line saying who holds it', async () => {
    const dir = freshDir()
    const server = await serve(dir)
    const second = await msgbus(['serve', '--port', '0', '--address', '127.0.0.1', '--history-dir', dir], {timeoutMs: 15_000})
    assert.notEqual(second.code, 0)
    assert.equal(second.stderr, `msgbus serve: history dir ${dir} is in use by process ${server.child.pid}\n`)
  })

  it('kill -9 after the 204s, and a torn record at the end: a restart cuts it, replays every message, and ids go on after them', async () => {
    const dir = freshDir()
    const first = await serve(dir)
    const ids: string[] = []
    for (let i = 0; i < 50; i++) {
      const reply = await post(first.port(), 'news', `message ${i}`)
      assert.equal(reply.status, 204)
      ids.push(reply.id!)
    }

    await first.stop('SIGKILL')
    // What a server killed in the middle of a write leaves: half a record.
    const segments = readdirSync(dir).filter((name) => name.endsWith('.seg'))
    const half = encodeRecord({id: '9999999999999-0', time: 0, channel: 'news', type: 'text/plain', essence: 'text/plain', body: Buffer.from('never answered')}).subarray(0, 30)
    appendFileSync(join(dir, segments.at(-1)!), half)

    const second = await serve(dir)
    assert.match(second.stderr, new RegExp(`history ${dir}: took over the lock of process ${first.child.pid}, which no longer runs`))
    assert.match(second.stderr, /history \S+\.seg: cut 30 bytes after its last whole record/)
    assert.match(second.stderr, new RegExp(`history 50 messages from ${dir} \\(oldest ${ids[0]}, horizon \\d+-0\\)`))
    assert.deepEqual(
      (await polled(second.port())).map((m) => m.id),
      ids,
    )
    const next = await post(second.port(), 'news', 'after the restart')
    assert.ok(compareMessageIds(next.id!, ids.at(-1)!) > 0, `${next.id} after ${ids.at(-1)}`)
  })

  it('kill -9 in the middle of publishes (--history-sync always): every id answered with 204 is read back', async () => {
    const dir = freshDir()
    const random = randomSource('history disk: kill -9 mid-publish')
    const server = await serve(dir)
    const port = server.port()
    const acked: string[] = []
    let stopped = false
    const publisher = async (n: number) => {
      for (let i = 0; !stopped; i++) {
        try {
          const reply = await post(port, `p${n}`, `publisher ${n} message ${i} `.padEnd(20 + ((n * 977 + i * 31) % 2000), '.'))
          if (reply.status === 204) acked.push(reply.id!)
        } catch {
          // The server is gone: what was in flight was never answered.
          return
        }
      }
    }

    const publishers = Array.from({length: 6}, (_, n) => publisher(n))
    await until(() => acked.length >= 50, () => `50 publishes answered (${acked.length})`, 20_000)
    const delay = random.int(500)
    await sleep(delay)
    await server.stop('SIGKILL')
    stopped = true
    await Promise.all(publishers)
    process.stderr.write(`      killed ${delay} ms after 50 answers; ${acked.length} answered in all (seed: MSGBUS_SEED=${process.env.MSGBUS_SEED})\n`)

    const recovered = await onDisk(dir)
    assertIncreasing(recovered.ids)
    const kept = new Set(recovered.ids)
    const missing = acked.filter((id) => !kept.has(id))
    assert.deepEqual(missing, [], `answered with 204 but not on disk (${recovered.ids.length} on disk)`)

    // And a server started on it goes on after the newest.
    const again = await serve(dir)
    const next = await post(again.port(), 'p0', 'after the restart')
    assert.ok(compareMessageIds(next.id!, recovered.ids.at(-1)!) > 0, `${next.id} after ${recovered.ids.at(-1)}`)
  })

  it('a subscriber across kill -9 and a restart on the same folder and port: every message answered with 204 arrives once, in order @slow', async () => {
    const dir = freshDir()
    const random = randomSource('history disk: a subscriber across a restart')
    const port = await freePort()
    const onPort = async () => {
      const process_ = await ServeProcess.start(['--port', String(port), '--address', '127.0.0.1', '--history-dir', dir])
      started.push(process_)
      return process_
    }

    let server = await onPort()
    const url = `http://127.0.0.1:${port}`
    const done = new AbortController()
    // From everything kept: what is published before it first connects is not live-only lost.
    const subscription = subscribe('feed', {url, since: 'all', minDelayMs: 50, maxDelayMs: 400, signal: done.signal})
    const gaps: string[] = []
    subscription.on('gap', (gap) => gaps.push(`${gap.reason} ${gap.after} ${gap.from}`))
    const received: string[] = []
    const reading = (async () => {
      for await (const message of subscription) received.push(message.id!)
    })()

    const acked: string[] = []
    let stopped = false
    const publish = async () => {
      for (let i = 0; !stopped; i++) {
        try {
          const reply = await post(port, 'feed', `message ${i}`)
          if (reply.status === 204) acked.push(reply.id!)
        } catch {
          // Down: what was in flight was never answered. Try again shortly.
          await sleep(20)
        }
      }
    }

    const publisher = publish()
    await until(() => received.length >= 30, () => `30 messages read (${received.length})`, 20_000)
    const delay = random.int(300)
    await sleep(delay)
    await server.stop('SIGKILL')
    const before = acked.length
    server = await onPort()
    await until(() => acked.length >= before + 30, () => `30 more publishes answered after the restart (${acked.length - before})`, 20_000)
    stopped = true
    await publisher
    const last = acked.at(-1)!
    await until(() => received.includes(last), () => `the last answered message ${last} read (${received.length} of ${acked.length})`, 20_000)
    done.abort()
    await reading
    process.stderr.write(`      killed ${delay} ms after 30 were read; ${acked.length} answered, ${received.length} read (seed: MSGBUS_SEED=${process.env.MSGBUS_SEED})\n`)

    assertIncreasing(received)
    const read = new Set(received)
    assert.deepEqual(acked.filter((id) => !read.has(id)), [], 'answered with 204 but never read')
    // Read but not answered: only what was written when the server was killed, before its 204 went out.
    const answered = new Set(acked)
    assert.ok(received.filter((id) => !answered.has(id)).length <= 1, `read without an answer: ${received.filter((id) => !answered.has(id)).join(', ')}`)
    assert.deepEqual(gaps, [], 'the history on disk had all it was asked for')
  })

  it('a zombie holding the lock (killed, not yet reaped) is taken over', async function () {
    // Zombies are told from /proc.
    if (process.platform !== 'linux') this.skip()
    const dir = freshDir()
    // The shell's child exits a second later, by when the shell has become `sleep 30`, which never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 30'], {stdio: ['ignore', 'pipe', 'ignore']})
    try {
      let out = ''
      parent.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
      await until(() => out.includes('\n'), 'the zombie pid')
      const zombie = Number(out.trim())
      const state = () => {
        try {
          return readFileSync(`/proc/${zombie}/stat`, 'latin1')
        } catch {
          return 'gone'
        }
      }
      await until(() => / Z /.test(state()), () => `the child to be a zombie: ${state()}`, 10_000)
      const first = await onDisk(dir)
      writeFileSync(join(dir, 'lock'), `${zombie}\n`)
      const second = await onDisk(dir)
      assert.deepEqual(second.lines, [`history ${dir}: took over the lock of process ${zombie}, which no longer runs`])
      assert.equal(second.horizon, first.horizon)
    } finally {
      parent.kill('SIGKILL')
    }
  })
})
