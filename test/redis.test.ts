// `msgbus serve --bus redis://`: nodes in their own processes (the built
// CLI) sharing one redis-server that the tests start on loopback, in a
// temporary folder, without persistence. What is asserted is what a user of
// several nodes relies on: every subscriber of every node gets every
// message once, in one order, with the same ids; a client resumes on any
// node; a node that lost Redis for a while catches up; a Redis that lost its
// data is reported as a gap, never passed over. Never how fast it was.
import assert from 'node:assert/strict'
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {mkdtempSync, rmSync} from 'node:fs'
import {connect, createServer, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {assertIncreasing, freePort, MsgbusProcess, request, ServeProcess, sleep, until, type Reply} from './support/harness.js'
import {randomSource, REPLAY} from './support/random.js'
import {StreamReader} from './support/stream-reader.js'

/** A redis-server of the test's own: loopback, a free port, a temporary folder, no persistence. */
class RedisServer {
  child: ChildProcess | undefined
  log = ''

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(): Promise<RedisServer> {
    if (spawnSync('redis-server', ['--version']).error) {
      assert.fail('redis-server is missing: run scripts/test-tools.sh as root (apt-get install redis-server redis-tools)')
    }

    const server = new RedisServer(await freePort(), mkdtempSync(join(tmpdir(), 'msgbus-redis-')))
    await server.run()
    return server
  }

  /** Starts (again) on the same port, empty: a restart without persistence. */
  async run(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no']
    const child = spawn('redis-server', args, {stdio: ['ignore', 'pipe', 'pipe']})
    this.child = child
    child.stdout!.on('data', (chunk: Buffer) => (this.log += chunk.toString()))
    await until(() => /Ready to accept connections/.test(this.log), () => `redis-server to start: ${this.log}`, {
      timeoutMs: 10_000,
      stop: () => child.exitCode !== null && `redis-server exited (${child.exitCode})`,
    })
  }

  async kill(): Promise<void> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await once(child, 'exit')
    this.log = ''
  }

  url(port = this.port): string {
    return `redis://127.0.0.1:${port}`
  }

  async remove(): Promise<void> {
    await this.kill()
    rmSync(this.dir, {recursive: true, force: true})
  }
}

/** A loopback TCP proxy in front of Redis whose connections can be cut (and new ones refused) and restored: a network outage on real sockets. */
class CuttableProxy {
  private readonly sockets = new Set<Socket>()
  private up = true
  private constructor(
    readonly server: Server,
    readonly port: number,
  ) {}

  static async start(target: number): Promise<CuttableProxy> {
    const port = await freePort()
    let proxy: CuttableProxy | undefined
    const server = createServer((client) => {
      if (!proxy!.up) return client.destroy()
      const upstream = connect(target, '127.0.0.1')
      for (const socket of [client, upstream]) {
        proxy!.sockets.add(socket)
        socket.on('error', () => {})
        socket.on('close', () => {
          proxy!.sockets.delete(socket)
          client.destroy()
          upstream.destroy()
        })
      }

      client.pipe(upstream)
      upstream.pipe(client)
    })
    proxy = new CuttableProxy(server, port)
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
    return proxy
  }

  cut(): void {
    this.up = false
    for (const socket of this.sockets) socket.destroy()
  }

  restore(): void {
    this.up = true
  }

  close(): void {
    this.cut()
    this.server.close()
  }
}

let redis: RedisServer
const nodes: ServeProcess[] = []
const readers: StreamReader[] = []

async function startNode(url: string, ...args: string[]): Promise<ServeProcess> {
  const node = await ServeProcess.start(['-p', String(await freePort()), '-l', '127.0.0.1', '--bus', url, ...args])
  nodes.push(node)
  return node
}

async function subscribe(node: ServeProcess, path: string, headers: Record<string, string> = {}): Promise<StreamReader> {
  const reader = await StreamReader.open(node.port(), path, {format: 'ndjson', headers})
  await reader.answered()
  readers.push(reader)
  return reader
}

function post(node: ServeProcess, channel: string, body: Buffer | string, type = 'text/plain'): Promise<Reply> {
  return request(`http://127.0.0.1:${node.port()}/msgbus/${channel}`, {method: 'POST', headers: {'Content-Type': type}, body})
}

/** A multipart/form-data body with one text field per value. */
function form(values: string[]): {type: string; body: string} {
  const boundary = 'msgbus-test-form'
  const parts = values.map((value, i) => `--${boundary}\r\nContent-Disposition: form-data; name="p${i}"\r\n\r\n${value}\r\n`)
  return {type: `multipart/form-data; boundary=${boundary}`, body: `${parts.join('')}--${boundary}--\r\n`}
}

/** Publishes `count` messages to `node`, one after the other, a little apart; keeps each answer. */
async function load(node: ServeProcess, channel: string, label: string, count: number, gapMs: number): Promise<Array<{body: string; status: number; id?: string; retryAfter?: string}>> {
  const answers = []
  for (let i = 0; i < count; i++) {
    const body = `${label}-${i}`
    const reply = await post(node, channel, body)
    answers.push({body, status: reply.status, id: reply.headers['msgbus-id'] as string | undefined, retryAfter: reply.headers['retry-after'] as string | undefined})
    await sleep(gapMs)
  }

  return answers
}

/** Every subscriber got exactly these messages, once each, in one order. */
function assertSame(got: StreamReader[], ids: string[]): void {
  for (const [i, reader] of got.entries()) assert.deepEqual(reader.ids(), ids, `subscriber ${i}`)
  assertIncreasing(ids)
}

describe('serve --bus redis://', function () {
  this.timeout(60_000)

  before(async () => {
    redis = await RedisServer.start()
  })

  afterEach(async () => {
    for (const reader of readers.splice(0)) reader.close()
    await Promise.all(nodes.splice(0).map((node) => node.stop('SIGKILL')))
    MsgbusProcess.killAll()
    // Each test begins on an empty Redis.
    await redis.kill()
    await redis.run()
  })

  after(async () => {
    await redis?.remove()
  })

  it('3 nodes: every subscriber on every node gets every message once, in one order; Msgbus-Subscribers counts the node\'s own; bodies exact; a form contiguous', async () => {
    const [a, b, c] = await Promise.all([startNode(redis.url()), startNode(redis.url()), startNode(redis.url())])
    // 3, 1 and 2 subscribers of `load`, so each node's count is its own.
    const onA = await Promise.all([subscribe(a, '/msgbus/load'), subscribe(a, '/msgbus/load'), subscribe(a, '/msgbus/')])
    const onB = [await subscribe(b, '/msgbus/load')]
    const onC = await Promise.all([subscribe(c, '/msgbus/load'), subscribe(c, '/msgbus/')])
    const all = [...onA, ...onB, ...onC]

    const theForm = form(['form-0', 'form-1', 'form-2'])
    const [fromA, fromB, fromC, formReply] = await Promise.all([
      load(a, 'load', 'a', 100, 2),
      load(b, 'load', 'b', 100, 2),
      load(c, 'load', 'c', 100, 2),
      sleep(100).then(() => post(b, 'load', theForm.body, theForm.type)),
    ])
    for (const answer of [...fromA, ...fromB, ...fromC]) assert.equal(answer.status, 204, answer.body)
    // Msgbus-Subscribers: the subscribers of the node published to that it was handed to.
    for (const [node, subscribers] of [
      [a, 3],
      [b, 1],
      [c, 2],
    ] as const) {
      const sample = await post(node, 'load', `count-${subscribers}`)
      assert.equal(sample.headers['msgbus-subscribers'], String(subscribers))
    }

    assert.equal(formReply.status, 204, formReply.body.toString())
    const formIds = String(formReply.headers['msgbus-id']).split(', ')
    assert.equal(formIds.length, 3)
    assert.equal(formReply.headers['msgbus-subscribers'], '1, 1, 1')

    const total = 300 + 3 + 3
    await Promise.all(all.map((reader) => reader.untilMessages(total, 30_000)))
    const ids = onA[0].ids()
    assertSame(all, ids)
    const published = [...fromA, ...fromB, ...fromC].map((answer) => answer.id!)
    for (const id of [...published, ...formIds]) assert.ok(ids.includes(id), `${id} delivered`)
    // Each node's own publishes in the order it answered them.
    for (const answers of [fromA, fromB, fromC]) assertIncreasing(answers.map((answer) => answer.id!))
    // The form's parts: one after the other, nothing between them.
    const at = ids.indexOf(formIds[0])
    assert.deepEqual(ids.slice(at, at + 3), formIds)
    assert.deepEqual(onB[0].bodies().slice(at, at + 3), ['form-0', 'form-1', 'form-2'])

    // Binary bodies, byte for byte, as another node keeps them.
    const random = randomSource('redis binary body')
    const bytes = Buffer.concat([Buffer.from(Array.from({length: 256}, (_, i) => i)), random.bytes(4000)])
    const sent = await post(a, 'bin', bytes, 'application/octet-stream')
    assert.equal(sent.status, 204)
    for (const node of [b, c]) {
      let got: Buffer = Buffer.alloc(0)
      await until(async () => {
        got = (await request(`http://127.0.0.1:${node.port()}/msgbus/bin?format=raw&since=all&poll=1`)).body
        return got.length > 0
      }, 'the binary message on another node')
      assert.ok(got.equals(bytes), `binary body on ${node.port()} (${REPLAY})`)
    }
  })

  it('a node restarted mid-load: its subscribers resume on another node with Last-Event-ID and lose nothing', async () => {
    const [a, b, c] = await Promise.all([startNode(redis.url()), startNode(redis.url()), startNode(redis.url())])
    const first = await subscribe(c, '/msgbus/load')
    const second = await subscribe(c, '/msgbus/load')
    const published = Promise.all([load(a, 'load', 'a', 150, 5), load(b, 'load', 'b', 150, 5)])
    await first.untilMessages(50)
    await c.stop('SIGKILL')
    await until(() => first.closed && second.closed, 'the streams to end with their node')
    // One comes back on another node, the other on the node restarted on its port.
    const lastFirst = first.ids().at(-1)!
    const lastSecond = second.ids().at(-1)!
    const resumedA = await subscribe(a, '/msgbus/load', {'Last-Event-ID': lastFirst})
    const restarted = await ServeProcess.start(['-p', String(c.port()), '-l', '127.0.0.1', '--bus', redis.url()])
    nodes.push(restarted)
    const resumedC = await subscribe(restarted, '/msgbus/load', {'Last-Event-ID': lastSecond})

    const answers = (await published).flat()
    for (const answer of answers) assert.equal(answer.status, 204, answer.body)
    const ids = answers.map((answer) => answer.id!).sort(compareIds)
    await resumedA.until(() => resumedA.ids().length + first.ids().length >= ids.length, 'the resumed stream on another node to catch up', 30_000)
    await resumedC.until(() => resumedC.ids().length + second.ids().length >= ids.length, 'the resumed stream on the restarted node to catch up', 30_000)
    for (const [before, after] of [
      [first, resumedA],
      [second, resumedC],
    ]) {
      assert.deepEqual(after.gaps, [])
      assert.deepEqual([...before.ids(), ...after.ids()], ids)
    }
  })

  it('a node cut from Redis for 5 s mid-load: its subscribers get everything once it is back; its publishes meanwhile get 503 with Retry-After', async () => {
    const proxy = await CuttableProxy.start(redis.port)
    try {
      const a = await startNode(redis.url())
      const metricsPort = await freePort()
      const cut = await startNode(redis.url(proxy.port), '--metrics', `127.0.0.1:${metricsPort}`)
      const readyz = () => request(`http://127.0.0.1:${metricsPort}/readyz`)
      assert.equal((await readyz()).status, 200)
      const there = await subscribe(cut, '/msgbus/load')
      const here = await subscribe(a, '/msgbus/load')
      const publishedA = load(a, 'load', 'a', 200, 25)
      const publishedCut = load(cut, 'load', 'cut', 200, 25)
      await here.untilMessages(60, 20_000)
      proxy.cut()
      const cutAt = Date.now()
      // Readiness says so while it lasts (a load balancer sends new clients elsewhere).
      let notReady: Reply | undefined
      await until(async () => (notReady = await readyz()).status === 503, 'readyz to fail while Redis is cut off')
      assert.match(notReady!.body.toString(), /redis.*unreachable since/)
      await sleep(5000 - (Date.now() - cutAt))
      proxy.restore()
      const answers = [...(await publishedA), ...(await publishedCut)]
      const refused = answers.filter((answer) => answer.status !== 204)
      assert.ok(refused.length > 0, 'some publishes to the node cut off were refused')
      for (const answer of refused) {
        assert.equal(answer.status, 503, answer.body)
        assert.ok(answer.retryAfter, 'Retry-After')
      }

      assert.ok(answers.filter((answer) => answer.body.startsWith('a-')).every((answer) => answer.status === 204), 'the node still connected took every publish')
      const accepted = answers.filter((answer) => answer.status === 204).map((answer) => answer.id!)
      await there.until(() => accepted.every((id) => there.ids().includes(id)), 'the node cut off to catch up', 30_000)
      await here.until(() => here.ids().length >= there.ids().length, 'both nodes to agree', 10_000)
      // Once each, in one order, the same on both nodes; a publish answered 503 either is not there or (cut after Redis took it) is, once.
      assert.deepEqual(there.gaps, [])
      assertSame([there, here], there.ids())
      assert.equal(new Set(there.bodies()).size, there.bodies().length)
      await cut.logged(/redis \w+ connection to .* back after/)
      assert.equal((await readyz()).status, 200)
      // A node on Redis stops as any other: SIGTERM, exit 0.
      assert.equal((await cut.stop()).code, 0)
    } finally {
      proxy.close()
    }
  })

  it('Redis restarted without persistence: subscribers get a `lost` gap, dump reports it and exits 1', async () => {
    const a = await startNode(redis.url())
    const b = await startNode(redis.url())
    const watcher = await subscribe(b, '/msgbus/load')
    // From the whole history: however late dump connects (a busy machine), the first two are its first two.
    const dump = new MsgbusProcess(['dump', `http://127.0.0.1:${a.port()}/msgbus/load`, '-n', '4', '--timeout', '40', '--since', 'all'])
    for (const body of ['one', 'two']) assert.equal((await post(a, 'load', body)).status, 204)
    await dump.until(() => dump.lines().length >= 2, 'dump to print the first two', 30_000)
    await watcher.untilMessages(2)

    await redis.kill()
    await redis.run()
    // Publishes go through again once the node has reconnected and seen the loss.
    for (const body of ['three', 'four']) {
      await until(async () => (await post(a, 'load', body)).status === 204, `${body} to be taken after the restart`, 20_000)
    }

    await watcher.until(() => watcher.messages.length >= 4, 'the messages after the restart', 20_000)
    assert.deepEqual(
      watcher.events.map((event) => (event.kind === 'gap' ? `gap ${event.reason}` : event.body)),
      ['one', 'two', 'gap lost', 'three', 'four'],
    )
    assert.equal(watcher.gaps[0].from, watcher.ids()[1])
    assertIncreasing(watcher.ids())
    const result = await dump.exit(30_000)
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr, /gap \(lost\): the shared log behind the server \(--bus\) lost messages after/)
    await a.logged(/redis the stream msgbus lost entries/)
  })

  it('a node cut off while the stream was trimmed past it: its subscribers get a `lost` gap, then the rest in order', async () => {
    const proxy = await CuttableProxy.start(redis.port)
    const {Redis} = await import('ioredis')
    const direct = new Redis({port: redis.port, host: '127.0.0.1', lazyConnect: true})
    try {
      const cut = await startNode(redis.url(proxy.port), '--history', '100')
      const watcher = await subscribe(cut, '/msgbus/load')
      assert.equal((await post(cut, 'load', 'before')).status, 204)
      await watcher.untilMessages(1)
      proxy.cut()
      // Others publish meanwhile, more than the stream keeps (MAXLEN 1000): what this node had not read is trimmed.
      await direct.connect()
      const pipeline = direct.pipeline()
      for (let i = 0; i < 1500; i++) pipeline.xadd('msgbus', 'MAXLEN', '1000', '*', 'c', 'load', 't', 'text/plain', 'e', 'text/plain', 'o', 'other:1', 'b', `meanwhile-${i}`)
      await pipeline.exec()
      proxy.restore()
      await watcher.until(() => watcher.bodies().at(-1) === 'meanwhile-1499', 'the node to catch up', 30_000)
      assert.deepEqual(watcher.gaps.map((gap) => [gap.reason, gap.from]), [['lost', watcher.ids()[0]]])
      // The gap comes where the hole is: after what it had, before the oldest entry the stream still held.
      const bodies = watcher.events.map((event) => (event.kind === 'gap' ? 'gap' : event.body))
      assert.deepEqual(bodies.slice(0, 3), ['before', 'gap', 'meanwhile-500'])
      assert.deepEqual(bodies.slice(2), Array.from({length: 1000}, (_, i) => `meanwhile-${500 + i}`))
      assertIncreasing(watcher.ids())
      await cut.logged(/were trimmed from msgbus before this node read them/)
    } finally {
      direct.disconnect()
      proxy.close()
    }
  })

  it('an entry written to the stream by someone else is held to what a publish is: a type or sender that would inject header lines never reaches a subscriber', async () => {
    const {Redis} = await import('ioredis')
    const direct = new Redis({port: redis.port, host: '127.0.0.1'})
    try {
      const node = await startNode(redis.url())
      const watcher = await subscribe(node, '/msgbus/forged')
      const forged: string[][] = [
        ['c', 'forged', 't', 'text/plain\r\nX-Injected: 1', 'e', 'text/plain', 'o', 'x:1', 'b', 'bad type'],
        ['c', 'forged', 't', 'text/plain', 'e', 'text/plain', 's', 'eve\r\nSet-Cookie: a=b', 'o', 'x:2', 'b', 'bad sender'],
        ['c', 'forged\n', 't', 'text/plain', 'e', 'text/plain', 'o', 'x:3', 'b', 'bad channel'],
        ['c', 'forged', 't', 'text/html', 'e', 'text/plain', 'o', 'x:4', 'b', 'essence worked out again'],
      ]
      for (const fields of forged) await direct.xadd('msgbus', '*', ...fields)
      assert.equal((await post(node, 'forged', 'published')).status, 204)
      await watcher.until(() => watcher.bodies().includes('published'), 'the published message', 20_000)
      assert.deepEqual(watcher.bodies(), ['essence worked out again', 'published'])
      // A type filter sees the essence of the type, not the one the entry claimed.
      const html = await request(`http://127.0.0.1:${node.port()}/msgbus/forged?format=ndjson&poll=1&since=all&type=text/html`)
      assert.deepEqual(html.body.toString().trim().split('\n').map((line) => (JSON.parse(line) as {body: string}).body), ['essence worked out again'])
      await node.logged(/redis an entry of the shared log was passed over: id \S+: not a media type/)
      await node.logged(/passed over: id \S+: not a user name/)
      await node.logged(/passed over: id \S+: not a channel name/)
    } finally {
      direct.disconnect()
    }
  })

  it('refuses a URL it cannot read, and a Redis it cannot reach, at start-up', async () => {
    const bad = await new MsgbusProcess(['serve', '-p', '0', '--bus', 'redis://127.0.0.1:1/x']).exit()
    assert.equal(bad.code, 2, bad.stderr)
    assert.match(bad.stderr, /database "x" is not a number/)
    const none = await new MsgbusProcess(['serve', '-p', '0', '--bus', `redis://127.0.0.1:${await freePort()}`]).exit(30_000)
    assert.notEqual(none.code, 0)
    assert.match(none.stderr, /cannot reach redis redis:\/\/127\.0\.0\.1:\d+/)
  })
})

function compareIds(x: string, y: string): number {
  const [xm, xs] = x.split('-').map(Number)
  const [ym, ys] = y.split('-').map(Number)
  return xm === ym ? xs - ys : xm - ym
}
