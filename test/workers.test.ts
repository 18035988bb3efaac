// `msgbus serve --workers 2`: the built CLI in its own process (a primary
// and two cluster workers), driven through HTTP as users drive it. Every
// message reaches the subscribers of both workers, in one order with one id
// sequence; Msgbus-Subscribers counts both workers; a worker killed with
// SIGKILL is forked again and its subscribers resume (Last-Event-ID) on
// whichever worker they land; a worker forked later has the history;
// SIGTERM stops all of it with exit 0.
//
// The 1,000 subscriptions are held by `msgbus test-sub` (one process, which
// checks loss and order of every message per connection); a few more are
// held here with the library's `subscribe`, recording ids, to compare the
// order the workers give.
import assert from 'node:assert/strict'
import {setMaxListeners} from 'node:events'
import {request as httpRequest} from 'node:http'
import {readFileSync, writeFileSync} from 'node:fs'
import {subscribe, type Subscription} from '../src/lib/client/subscribe.js'
import type {TestSubReport} from '../src/lib/load/report.js'
import {assertIncreasing, msgbus, MsgbusProcess, request, ServeProcess, sleep, tempFolder, until, type Reply} from './support/harness.js'
import {unreceived} from './support/sockets.js'

/** The id list every recorder must agree on, and what each received. */
interface Recorder {
  subscription: Subscription
  ids: string[]
  bodies: string[]
  reconnects: number
  /** Its first stream is open: the server subscribed it before it wrote the head, so it gets every message published from now on. */
  connected: boolean
  done: Promise<void>
}

function record(url: string, abort: AbortSignal): Recorder {
  const subscription = subscribe(url, {signal: abort, minDelayMs: 50, maxDelayMs: 500})
  const recorder: Recorder = {subscription, ids: [], bodies: [], reconnects: 0, connected: false, done: Promise.resolve()}
  subscription.on('reconnect', () => recorder.reconnects++)
  subscription.once('connect', () => (recorder.connected = true))
  recorder.done = (async () => {
    try {
      for await (const message of subscription) {
        recorder.ids.push(message.id ?? '')
        recorder.bodies.push(message.body.toString())
      }
    } catch (error) {
      if (!abort.aborted) throw error
    }
  })()
  return recorder
}

/** The children of a process (the primary's workers), from /proc. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

/** The metrics listener's figures, by metric name with labels. */
async function metricsOf(port: number): Promise<Map<string, number>> {
  const reply = await request(`http://127.0.0.1:${port}/metrics`)
  const figures = new Map<string, number>()
  for (const line of reply.body.toString().split('\n')) {
    const match = /^(msgbus_\S+) (\S+)$/.exec(line)
    if (match) figures.set(match[1], Number(match[2]))
  }

  return figures
}

/**
 * A publish on a connection of its own, given up after `timeoutMs`: a
 * connection the primary was handing to a worker as it was killed is never
 * answered (Node's cluster does not pass it to another worker), so a client
 * needs a timeout, as the README says.
 */
function post(port: number, channel: string, body: string, timeoutMs = 5000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`http://127.0.0.1:${port}/msgbus/${channel}`, {method: 'POST', agent: false, timeout: timeoutMs, headers: {'Content-Type': 'text/plain'}}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks)}))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(body)
  })
}

describe('serve --workers 2', function () {
  this.timeout(120_000)
  let serve: ServeProcess
  let port: number
  let metricsPort: number
  const aborts: AbortController[] = []
  const subs: MsgbusProcess[] = []
  /** The ids of the first test's messages, as its subscribers got them: history from before the worker killed in the second. */
  let floodIds: string[] = []

  /**
   * Recorders whose streams are all open. Waited for here, not through the
   * cluster's subscriber count: that is the sum of what each worker last
   * reported (every second), so right after an earlier test it still counts
   * that test's subscribers, and a publish could come before a recorder is
   * subscribed (which then rightly never gets it: it asked for live messages).
   */
  const recorders = async (channel: string, count: number): Promise<Recorder[]> => {
    const abort = new AbortController()
    setMaxListeners(count + 10, abort.signal)
    aborts.push(abort)
    const made = Array.from({length: count}, () => record(`http://127.0.0.1:${port}/msgbus/${channel}`, abort.signal))
    await until(() => made.every((recorder) => recorder.connected), () => `the ${channel} recorders' streams to open: ${made.filter((recorder) => recorder.connected).length} of ${count}`, {timeoutMs: 30_000, everyMs: 20})
    return made
  }

  const subscribers = async (): Promise<number> => (await metricsOf(metricsPort)).get('msgbus_subscribers') ?? 0

  before(async function () {
    serve = await ServeProcess.start(['-p', '0', '-l', '127.0.0.1', '--workers', '2', '--metrics', '0', '--stats', '1'])
    await serve.logged(/listen 2 workers serving/, 30_000)
    port = serve.port()
    metricsPort = Number(/listen metrics on \S+:(\d+)/.exec(serve.stderr)![1])
  })

  after(async () => {
    for (const abort of aborts) abort.abort()
    for (const sub of subs) sub.child.kill('SIGKILL')
    if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL')
    for (const pid of childrenOf(serve.child.pid!)) process.kill(pid, 'SIGKILL')
  })

  it('delivers 500 msg/s to 1,000 subscribers spread over both workers, none lost, in one order; Msgbus-Subscribers counts both', async () => {
    const sub = new MsgbusProcess(['test-sub', '--url', `http://127.0.0.1:${port}`, '-c', 'flood', '-n', '1000', '--json'])
    subs.push(sub)
    try {
      await oneOrderForAll(sub)
    } finally {
      sub.child.kill('SIGKILL')
    }
  })

  /** The first test's body: the 1,000 subscriptions of `sub`, and eight of ours. */
  async function oneOrderForAll(sub: MsgbusProcess): Promise<void> {
    const ours = await recorders('flood', 8)
    await until(async () => (await subscribers()) >= 1008, 'the workers to report 1,008 subscribers', {timeoutMs: 60_000, everyMs: 250})
    const figures = await metricsOf(metricsPort)
    const one = figures.get('msgbus_worker_subscribers{worker="1"}') ?? 0
    const two = figures.get('msgbus_worker_subscribers{worker="2"}') ?? 0
    assert.equal(one + two, 1008)
    // Connections are handed to the workers in turn: both hold a good share.
    assert.ok(one >= 200 && two >= 200, `subscribers per worker: ${one} and ${two}`)
    assert.equal(figures.get('msgbus_workers_serving'), 2)

    // 500 msg/s over 8 connections (the rate is theirs together): on a busy machine a round trip through the primary and both workers' fan-out to 500 subscribers each takes longer than 2 ms.
    const publishing = new MsgbusProcess(['test-pub', '--url', `http://127.0.0.1:${port}`, '-c', 'flood', '-r', '500', '--connections', '8', '--count', '2000', '--json'])
    const published = await publishing.exit(90_000)
    assert.equal(published.code, 0, published.stderr)
    const count = (JSON.parse(published.stdout.trim().split('\n').at(-1)!) as {published: number}).published
    assert.equal(count, 2000)

    // One publish more, answered once both workers counted their subscribers.
    const answer = await post(port, 'flood', 'last')
    assert.equal(answer.status, 204)
    assert.equal(answer.headers['msgbus-subscribers'], '1008', 'Msgbus-Subscribers is the sum over both workers')

    await until(() => ours.every((recorder) => recorder.ids.length >= 2001), 'the recorders to have every message', {timeoutMs: 60_000, everyMs: 100})
    await until(() => unreceived(port) === 0, 'every delivery to be read', {timeoutMs: 60_000, everyMs: 50})
    await sleep(200)
    sub.child.kill('SIGINT')
    const result = await sub.exit(30_000)
    const report = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as TestSubReport
    assert.equal(report.connections.connected, 1000)
    assert.equal(report.lost, 0, 'nothing lost')
    assert.equal(report.out_of_order, 0, 'each subscriber has them in order')
    assert.equal(report.duplicates, 0)
    // test-pub's 2000, and the one above (not one of test-pub's: counted but not checked).
    assert.ok(report.received >= 2000 * 1000, `received ${report.received}`)

    assertIncreasing(ours[0].ids)
    for (const recorder of ours) assert.deepEqual(recorder.ids, ours[0].ids, 'every subscriber, on either worker, has the same ids in the same order')
    assert.equal(new Set(ours[0].ids).size, ours[0].ids.length)
    floodIds = ours[0].ids
  }

  it('forks a worker killed with SIGKILL again; its subscribers resume with Last-Event-ID, nothing lost for anyone', async () => {
    const ours = await recorders('kill', 20)
    const workers = childrenOf(serve.child.pid!)
    assert.equal(workers.length, 2, `the primary's children: ${workers.join(', ')}`)
    const victim = workers[0]
    const acknowledged: string[] = []
    const publishing = (async () => {
      for (let n = 0; n < 300; n++) {
        const body = `m${n}`
        // A publish on the worker being killed fails (or is never answered): it goes again (to the next worker), as a client would send it.
        for (let attempt = 0; ; attempt++) {
          const reply = await post(port, 'kill', body).catch(() => undefined)
          if (reply?.status === 204) break
          assert.ok(attempt < 50, `publish ${body}: ${reply?.status}`)
          await sleep(50)
        }

        acknowledged.push(body)
        await sleep(5)
      }
    })()
    await until(() => acknowledged.length >= 60, '60 publishes', {timeoutMs: 30_000})
    process.kill(victim, 'SIGKILL')
    await publishing
    await serve.logged(/worker \d \(pid \d+\) was killed \(SIGKILL\).*forking another/, 10_000)
    await until(async () => (await metricsOf(metricsPort)).get('msgbus_workers_serving') === 2, 'both workers serving again', {timeoutMs: 30_000, everyMs: 250})
    assert.ok(!childrenOf(serve.child.pid!).includes(victim))
    assert.equal(childrenOf(serve.child.pid!).length, 2)

    await until(() => ours.every((recorder) => acknowledged.every((body) => recorder.bodies.includes(body))), () =>
        `every recorder to have all ${acknowledged.length} messages: ${ours.map((r) => r.bodies.length).join(' ')}; missing: ${ours
          .map((r, i) => ({i, reconnects: r.reconnects, missing: acknowledged.filter((body) => !r.bodies.includes(body))}))
          .filter((r) => r.missing.length > 0)
          .map((r) => `recorder ${r.i} (reconnects ${r.reconnects}) lacks ${r.missing.join(',')}`)
          .join('; ')}`, {timeoutMs: 60_000, everyMs: 100})
    const resumed = ours.filter((recorder) => recorder.reconnects > 0)
    assert.ok(resumed.length > 0 && resumed.length < ours.length, `${resumed.length} of ${ours.length} subscribers were on the killed worker`)
    for (const recorder of ours) {
      assertIncreasing(recorder.ids)
      assert.equal(recorder.subscription.losses.events, 0, 'no gap: the resume found every message')
    }
  })

  it('a worker forked later has the history: a resume from an old id works on either worker', async () => {
    // The worker forked in the test above started after the first test's messages; its window came from the primary.
    assert.ok(floodIds.length > 10, 'the first test ran')
    const from = floodIds.length - 6
    // Fresh connections, handed to the workers in turn: the old worker and the one forked later.
    for (let i = 0; i < 4; i++) {
      const reply = await request(`http://127.0.0.1:${port}/msgbus/flood?format=ndjson&poll=1&since=${encodeURIComponent(floodIds[from])}`)
      assert.equal(reply.status, 200)
      assert.equal(reply.headers['msgbus-gap'], undefined)
      const ids = reply.body
        .toString()
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as {id: string}).id)
      assert.deepEqual(ids, floodIds.slice(from + 1))
    }
  })

  it('SIGTERM stops every worker (streams end with the shutdown notice) and exits 0', async () => {
    const ours = await recorders('end', 4)
    const notices: string[] = []
    for (const recorder of ours) recorder.subscription.on('disconnect', (info) => info.reason && notices.push(info.reason))
    const workers = childrenOf(serve.child.pid!)
    const {code} = await serve.stop('SIGTERM')
    assert.equal(code, 0)
    assert.equal(notices.length, 4, `shutdown notices: ${notices.join(', ')}`)
    assert.ok(notices.every((reason) => reason === 'shutdown'), notices.join(', '))
    for (const pid of workers) assert.throws(() => process.kill(pid, 0), `worker ${pid} has exited`)
  })

  it('refuses --user and a bad count with exit 2 and a one-line reason', async () => {
    const user = await msgbus(['serve', '-p', '0', '--workers', '2', '--user', 'nobody'], {timeoutMs: 20_000})
    assert.equal(user.code, 2)
    assert.match(user.stderr, /--user cannot be used with --workers/)
    const count = await msgbus(['serve', '-p', '0', '--workers', 'many'], {timeoutMs: 20_000})
    assert.equal(count.code, 2)
    assert.match(count.stderr, /--workers takes a number from 1 to 256, or auto/)
  })
})

describe('serve --workers 2: the history folder and SIGHUP', function () {
  this.timeout(60_000)
  const inTemp = tempFolder('msgbus-workers-')
  let serve: ServeProcess | undefined
  afterEach(() => serve?.child.kill('SIGKILL'))

  it('the primary writes the history, and a restarted cluster replays it on either worker', async () => {
    const dir = inTemp('history')
    const start = async () => {
      const started = await ServeProcess.start(['-p', '0', '-l', '127.0.0.1', '--workers', '2', '--history-dir', dir])
      await started.logged(/listen 2 workers serving/, 30_000)
      return started
    }

    serve = await start()
    const base = `http://127.0.0.1:${serve.port()}/msgbus/kept`
    const ids: string[] = []
    for (const body of ['a', 'b', 'c']) {
      const reply = await request(base, {method: 'POST', body, headers: {'Content-Type': 'text/plain'}})
      assert.equal(reply.status, 204)
      ids.push(reply.headers['msgbus-id'] as string)
    }

    assert.equal((await serve.stop('SIGTERM')).code, 0)
    serve = await start()
    for (let i = 0; i < 2; i++) {
      const reply = await request(`http://127.0.0.1:${serve.port()}/msgbus/kept?format=ndjson&poll=1`)
      const kept = reply.body.toString().trim().split('\n').map((line) => (JSON.parse(line) as {id: string}).id)
      assert.deepEqual(kept, ids)
    }

    // New ids go on after the kept ones.
    const next = await request(`http://127.0.0.1:${serve.port()}/msgbus/kept`, {method: 'POST', body: 'd', headers: {'Content-Type': 'text/plain'}})
    assertIncreasing([...ids, next.headers['msgbus-id'] as string])
    assert.equal((await serve.stop('SIGTERM')).code, 0)
  })

  it('passes SIGHUP on: every worker re-reads the ACL', async () => {
    const acl = inTemp('acl')
    writeFileSync(acl, '*  -  -  public/*\n')
    serve = await ServeProcess.start(['-p', '0', '-l', '127.0.0.1', '--workers', '2', '--acl', acl])
    await serve.logged(/listen 2 workers serving/, 30_000)
    writeFileSync(acl, '*  -  public/*  public/*\n')
    serve.child.kill('SIGHUP')
    await until(() => (serve!.stderr.match(/reload acl /g) ?? []).length === 2, () => `two workers to reload the ACL: ${serve!.stderr}`, {timeoutMs: 20_000})
    // Both workers now let anyone publish to public/*.
    for (let i = 0; i < 4; i++) {
      const reply = await request(`http://127.0.0.1:${serve.port()}/msgbus/public/x`, {method: 'POST', body: 'hi', headers: {'Content-Type': 'text/plain'}})
      assert.equal(reply.status, 204)
    }

    assert.equal((await serve.stop('SIGTERM')).code, 0)
  })
})
