// `serve --bus nats://`: nodes (msgbus serve, each its own process) share
// one NATS JetStream stream on a nats-server the tests start themselves
// (Debian's nats-server, installed by scripts/test-tools.sh). Needs
// `npm run build` first.
import assert from 'node:assert/strict'
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {assertIncreasing, freePort, request, ServeProcess, Subscription, until, type Reply} from './support/harness.js'
import {StreamReader, type StreamEvent, type StreamMessage} from './support/stream-reader.js'
import {randomSource, REPLAY} from './support/random.js'
import {NatsLink} from '../src/lib/link/nats-link.js'
import type {StoredMessage} from '../src/lib/history/store.js'

/** A nats-server with JetStream, on a loopback port, its store in `dir`. */
class NatsServer {
  private log = ''
  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => (this.log += chunk.toString()))
    child.stderr!.on('data', (chunk: Buffer) => (this.log += chunk.toString()))
  }

  static async start(port: number, dir: string): Promise<NatsServer> {
    const server = new NatsServer(spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], {stdio: ['ignore', 'pipe', 'pipe']}))
    await until(() => /Server is ready/.test(server.log), () => `nats-server to be ready: ${server.log}`, {
      timeoutMs: 15_000,
      stop: () => server.child.exitCode !== null && `nats-server exited (${server.child.exitCode}): ${server.log}`,
    })
    return server
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    await once(this.child, 'exit')
  }
}

const hasNats = spawnSync('nats-server', ['--version']).status === 0

function post(port: number, channel: string, body: Buffer | string, type = 'text/plain'): Promise<Reply> {
  return request(`http://127.0.0.1:${port}/msgbus/${channel}`, {method: 'POST', headers: {'Content-Type': type}, body})
}

async function posted(port: number, channel: string, body: Buffer | string, type?: string): Promise<string[]> {
  const reply = await post(port, channel, body, type)
  assert.equal(reply.status, 204, `publish on :${port}: ${reply.status} ${reply.body.toString()}`)
  return String(reply.headers['msgbus-id']).split(/,\s*/)
}

function messages(events: StreamEvent[]): StreamMessage[] {
  return events.filter((event): event is StreamMessage => event.kind === 'message')
}

describe('serve --bus nats:// (NATS JetStream)', function () {
  this.timeout(90_000)
  let dir = ''
  let natsPort = 0
  let nats: NatsServer | undefined
  const nodes: ServeProcess[] = []
  const readers: StreamReader[] = []

  before(async () => {
    assert.ok(hasNats, 'nats-server is not installed: run scripts/test-tools.sh (as root it installs Debian\'s nats-server)')
  })

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'msgbus-nats-'))
    natsPort = await freePort()
    nats = await NatsServer.start(natsPort, dir)
  })

  afterEach(async () => {
    for (const reader of readers.splice(0)) reader.close()
    await Promise.all(nodes.splice(0).map((node) => node.stop('SIGKILL')))
    await nats?.stop()
    rmSync(dir, {recursive: true, force: true})
  })

  async function node(bus: string, extra: string[] = []): Promise<ServeProcess> {
    const serve = await ServeProcess.start(['-p', '0', '-l', '127.0.0.1', '--bus', bus, ...extra])
    nodes.push(serve)
    return serve
  }

  async function sse(port: number, path: string, headers: Record<string, string> = {}): Promise<StreamReader> {
    const reader = await StreamReader.open(port, path, {format: 'sse', headers})
    readers.push(reader)
    await reader.answered()
    return reader
  }

  it('three nodes: every subscriber on every node gets every message once, in order, with the same ids; a form stays together; binary bodies exact', async () => {
    const random = randomSource('nats three nodes')
    const bus = `nats://127.0.0.1:${natsPort}?stream=three`
    const servers = [await node(bus), await node(bus), await node(bus)]
    const ports = servers.map((server) => server.port())
    const subscribers = await Promise.all(ports.flatMap((port) => [sse(port, '/msgbus/c'), sse(port, '/msgbus/')]))

    // Each node publishes its own sequence at once with the others (they race for the stream's tail), plus a form of three parts.
    const perNode = 40
    const form = '--F\r\nContent-Disposition: form-data; name="a"\r\nContent-Type: text/plain\r\n\r\nform-1\r\n--F\r\nContent-Disposition: form-data; name="b"\r\nContent-Type: text/plain\r\n\r\nform-2\r\n--F\r\nContent-Disposition: form-data; name="c"\r\nContent-Type: text/plain\r\n\r\nform-3\r\n--F--\r\n'
    const given = new Map<string, string>()
    await Promise.all(
      ports.map(async (port, n) => {
        for (let i = 0; i < perNode; i++) {
          const body = `node${n}-${i}`
          given.set(body, (await posted(port, 'c', body))[0])
          if (n === 1 && i === perNode / 2) {
            const ids = await posted(port, 'c', form, 'multipart/form-data; boundary=F')
            ids.forEach((id, k) => given.set(`form-${k + 1}`, id))
          }

          if (random.next() < 0.2) await new Promise((resolve) => setImmediate(resolve))
        }
      }),
    )
    const total = 3 * perNode + 3
    assert.equal(given.size, total)

    const lists = await Promise.all(subscribers.map((reader) => reader.untilMessages(total, 30_000)))
    await new Promise((resolve) => setTimeout(resolve, 200))
    const [first] = lists
    for (const [k, reader] of subscribers.entries()) {
      const got = messages(reader.events)
      assert.equal(got.length, total, `subscriber ${k} (${REPLAY}): ${got.length} messages, not ${total}`)
      assert.equal(reader.events.filter((event) => event.kind === 'gap').length, 0, `subscriber ${k}: no gap`)
      assert.deepEqual(got.map((m) => m.id), first.map((m) => m.id), `subscriber ${k}: the same ids in the same order as subscriber 0`)
      assert.deepEqual(got.map((m) => m.body), first.map((m) => m.body), `subscriber ${k}: the same messages`)
    }

    const ids = first.map((m) => m.id!)
    assertIncreasing(ids)
    assert.deepEqual(new Set(first.map((m) => m.body)), new Set(given.keys()), 'every message once')
    for (const m of first) assert.equal(m.id, given.get(m.body), `${m.body}: the id its publisher was told`)
    const formAt = first.findIndex((m) => m.body === 'form-1')
    assert.deepEqual(first.slice(formAt, formAt + 3).map((m) => m.body), ['form-1', 'form-2', 'form-3'], 'a form is contiguous')
    for (let n = 0; n < 3; n++) {
      const own = first.map((m) => m.body).filter((body) => body.startsWith(`node${n}-`))
      assert.deepEqual(own, Array.from({length: perNode}, (_, i) => `node${n}-${i}`), `node ${n}'s messages in the order it published them`)
    }

    // Binary bodies, every byte value, published on one node and read back exactly on another.
    const binary = Buffer.from(Array.from({length: 4096}, (_, i) => (i * 7 + random.int(256)) & 0xff))
    const [binaryId] = await posted(ports[0], 'bin', binary, 'application/octet-stream')
    const replay = await Subscription.open(ports[2], '/msgbus/bin?since=all')
    try {
      const [part] = await replay.waitParts(1, 10_000)
      assert.ok(part.body.equals(binary), 'the binary body byte for byte')
      assert.equal(part.headers['message-id'], binaryId, 'the id its publisher was told')
    } finally {
      replay.close()
    }
  })

  it('three links racing for the stream\'s tail (12 appenders at once): one order on every node, ids increasing and unique, forms whole', async () => {
    const url = `nats://127.0.0.1:${natsPort}?stream=race`
    const links = [0, 1, 2].map(() => new NatsLink(url))
    const seen: StoredMessage[][] = [[], [], []]
    const lost: number[] = []
    try {
      for (const [i, link] of links.entries()) {
        await link.open({count: 100_000, bytes: 0, ageMs: 0}, {
          commit: (batch, done) => {
            seen[i].push(...batch)
            done?.(batch.map(() => 0))
          },
          lost: () => lost.push(i),
        })
      }

      const input = (body: string) => ({channel: 'c', type: 'text/plain', essence: 'text/plain', body: Buffer.from(body)})
      const told = new Map<string, string>()
      await Promise.all(
        links.flatMap((link, l) =>
          [0, 1, 2, 3].map(async (a) => {
            for (let i = 0; i < 60; i++) {
              const appended = await link.append([input(`${l}.${a}.${i}`), input(`${l}.${a}.${i}+`)])
              told.set(`${l}.${a}.${i}`, appended[0].id)
              told.set(`${l}.${a}.${i}+`, appended[1].id)
            }
          }),
        ),
      )
      await until(() => seen.every((list) => list.length === told.size), () => `every link to have ${told.size} messages: ${seen.map((list) => list.length)}`, {timeoutMs: 10_000})
      process.stdout.write(`      (${links.map((link) => link.conflicts).join(' + ')} publishes refused for another node's and tried again)\n`)
      const [first] = seen
      for (const list of seen) assert.deepEqual(list.map((m) => `${m.id} ${m.body}`), first.map((m) => `${m.id} ${m.body}`), 'the same messages, ids and order on every link')
      assertIncreasing(first.map((m) => m.id))
      for (const m of first) assert.equal(told.get(m.body.toString()), m.id, 'the id its appender was told')
      first.forEach((m, i) => m.body.toString().endsWith('+') && assert.equal(`${first[i - 1].body}+`, m.body.toString(), 'a form\'s two messages together'))
      assert.deepEqual(lost, [], 'no loss')
    } finally {
      await Promise.all(links.map((link) => link.close()))
    }
  })

  it('a node restarted: its subscribers resume on another node with Last-Event-ID, nothing lost; it comes back with the stream\'s window', async () => {
    const bus = `nats://127.0.0.1:${natsPort}?stream=restart`
    const [a, b, c] = [await node(bus), await node(bus), await node(bus)]
    const onA = await sse(a.port(), '/msgbus/r')
    const published: string[] = []
    const publish = async (port: number, from: number, to: number) => {
      for (let i = from; i < to; i++) {
        await posted(port, 'r', `m${i}`)
        published.push(`m${i}`)
      }
    }

    await publish(b.port(), 0, 20)
    await onA.untilMessages(20)
    const last = messages(onA.events).at(-1)!.id!

    // Node A goes; publishing goes on on B while its subscriber is away.
    await a.stop('SIGKILL')
    nodes.splice(nodes.indexOf(a), 1)
    await publish(b.port(), 20, 50)
    const resumed = await sse(c.port(), '/msgbus/r', {'Last-Event-ID': last})
    await resumed.untilMessages(30)
    await publish(c.port(), 50, 60)
    await resumed.untilMessages(40)
    assert.deepEqual(
      [...messages(onA.events), ...messages(resumed.events)].map((m) => m.body),
      published,
      'before the restart on A, then after it on C: every message once, in order',
    )
    assert.equal(resumed.events.filter((event) => event.kind === 'gap').length, 0, 'no gap')

    // A restarted: it reads the stream's window, so a resume there works too.
    const again = await node(bus)
    const all = await sse(again.port(), '/msgbus/r?since=all')
    await all.untilMessages(60)
    assert.deepEqual(messages(all.events).map((m) => m.body), published)
    assert.deepEqual(
      messages(all.events).map((m) => m.id),
      [...messages(onA.events), ...messages(resumed.events)].map((m) => m.id),
      'the same ids on the restarted node',
    )
  })

  it('nats-server restarted with its store: nothing lost, no gap; restarted with its store wiped: a lost gap', async () => {
    const bus = `nats://127.0.0.1:${natsPort}?stream=kept`
    const [a, b] = [await node(bus), await node(bus)]
    const onB = await sse(b.port(), '/msgbus/k')
    const sent: string[] = []
    const send = async (body: string) => {
      // While nats-server comes back a publish may get 503 (the publisher tries again, as a client told Retry-After would).
      await until(async () => (await post(a.port(), 'k', body)).status === 204, `${body} to be published`, {timeoutMs: 20_000})
      sent.push(body)
    }

    for (let i = 0; i < 10; i++) await send(`k${i}`)
    await nats!.stop()
    nats = await NatsServer.start(natsPort, dir)
    for (let i = 10; i < 20; i++) await send(`k${i}`)
    await onB.untilMessages(20, 20_000)
    assert.deepEqual(messages(onB.events).map((m) => m.body), sent, 'every message once, in order, across the restart')
    assert.equal(onB.events.filter((event) => event.kind === 'gap').length, 0, 'no gap: the stream was kept')

    await nats!.stop()
    rmSync(join(dir, 'jetstream'), {recursive: true, force: true})
    nats = await NatsServer.start(natsPort, dir)
    await onB.until(() => onB.events.some((event) => event.kind === 'gap'), 'a gap event', 20_000)
    await send('k-after')
    await onB.until(() => messages(onB.events).some((m) => m.body === 'k-after'), 'the message after the loss', 20_000)
    const gap = onB.events.find((event) => event.kind === 'gap')
    assert.equal(gap?.kind === 'gap' && gap.reason, 'lost')
    assert.equal(gap?.kind === 'gap' && gap.from, messages(onB.events)[19].id, 'after the last message B had')
    assert.deepEqual(onB.events.slice(-2).map((event) => (event.kind === 'gap' ? 'GAP' : event.body)), ['GAP', 'k-after'])
  })

  it('nats-server restarted without its stream: subscribers get a lost gap; publishes while it is down fail with 503; readiness says so', async () => {
    const bus = `nats://127.0.0.1:${natsPort}?stream=lossy&storage=memory`
    const metricsPort = await freePort()
    const a = await node(bus)
    const b = await node(bus, ['--metrics', `127.0.0.1:${metricsPort}`])
    const onB = await sse(b.port(), '/msgbus/l')
    const [before] = await posted(a.port(), 'l', 'before')
    await onB.untilMessages(1)

    await nats!.stop()
    await until(async () => (await request(`http://127.0.0.1:${metricsPort}/readyz`)).status === 503, 'readiness to fail while nats-server is down', {timeoutMs: 15_000})
    const down = await post(a.port(), 'l', 'while-down')
    assert.equal(down.status, 503, `a publish while nats-server is down: ${down.body.toString()}`)
    assert.equal(down.headers['retry-after'], '1')

    // Memory storage: the restarted server has no stream; the nodes make it anew and tell their subscribers of the hole.
    nats = await NatsServer.start(natsPort, dir)
    await onB.until(() => onB.events.some((event) => event.kind === 'gap'), 'a gap event', 20_000)
    await until(async () => (await post(a.port(), 'l', 'after')).status === 204, 'a publish to succeed again', {timeoutMs: 20_000})
    await onB.until(() => messages(onB.events).some((m) => m.body === 'after'), 'the message after the loss', 20_000)
    const gaps = onB.events.filter((event) => event.kind === 'gap')
    assert.equal(gaps.length, 1, `one gap: ${JSON.stringify(onB.events)}`)
    assert.equal(gaps[0].kind === 'gap' && gaps[0].reason, 'lost')
    assert.equal(gaps[0].kind === 'gap' && gaps[0].from, before, 'the gap says the last message the node had')
    const bodies = onB.events.map((event) => (event.kind === 'gap' ? 'GAP' : event.body)).filter((body) => body !== 'while-down')
    assert.deepEqual(bodies.slice(0, 2), ['before', 'GAP'])
    assert.equal(bodies.at(-1), 'after')
    assert.equal((await request(`http://127.0.0.1:${metricsPort}/readyz`)).status, 200, 'ready again')
  })
})
