// --metrics: Prometheus text, /livez and /readyz on a listener of their own, as an operator's scraper and probes see them.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {createBus, MsgbusError, type BusServer} from '../src/lib/index.js'
import {basic} from './support/answers.js'
import {BIN, msgbus, portOf, RawClient, request, run, startBus, stopAll, tempFolder, until, type Reply} from './support/harness.js'

const MiB = 1024 * 1024
const SECRET = 'pw'
const AUTH = {Authorization: `Basic ${Buffer.from(`op:${SECRET}`).toString('base64')}`}

/** A scrape as name{labels} → value, the way the text writes them. */
type Scrape = Map<string, number>

async function scrape(base: string): Promise<Scrape> {
  const reply = await request(`${base}/metrics`)
  assert.equal(reply.status, 200, reply.body.toString())
  assert.match(String(reply.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  const values: Scrape = new Map()
  for (const line of reply.body.toString().split('\n')) {
    const match = /^(\w+(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (match) values.set(match[1], Number(match[2]))
  }

  return values
}

/** How much each of `names` moved between two scrapes. */
function moved(before: Scrape, after: Scrape, names: string[]): Record<string, number> {
  return Object.fromEntries(names.map((name) => [name, (after.get(name) ?? 0) - (before.get(name) ?? 0)]))
}

function publishTo(server: BusServer, channel: string, body: Buffer | string): Promise<Reply> {
  return request(`${server.url()}/msgbus/${channel}`, {method: 'POST', headers: {'Content-Type': 'text/plain', ...AUTH}, body})
}

/** Publishes `body` four at a time, pipelined on one connection, until `done()`; throws past 256 MiB. */
async function floodUntil(server: BusServer, channel: string, body: Buffer, done: () => boolean): Promise<void> {
  for (let sent = 0; !done(); sent += 4 * body.length) {
    if (sent > 256 * MiB) throw new Error('nothing happened after 256 MiB')
    const head = `POST /msgbus/${channel} HTTP/1.1\r\nHost: x\r\n${basic('op', SECRET)}Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`
    const client = await RawClient.open(portOf(server))
    client.socket.write(Buffer.concat(Array.from({length: 4}, () => [Buffer.from(head), body]).flat()))
    await client.until((text) => (text.match(/HTTP\/1\.1 204/g) ?? []).length === 4, 20000, 'four 204s')
    client.close()
  }
}

describe('metrics and health (--metrics)', function () {
  this.timeout(30000)
  let server: BusServer
  let metricsUrl: string

  before(async () => {
    // A small --max-pending and no --slow-timeout, so a reader that stops is cut after a few MiB.
    server = await startBus({metrics: '127.0.0.1:0', secret: SECRET, maxPending: 64 * 1024, slowTimeout: 0})
    metricsUrl = server.url('metrics')
  })
  after(stopAll)

  it('listens on loopback, on a port of its own; /livez and /readyz answer 200 one line per check, HEAD too; anything else is 404', async () => {
    assert.equal(server.addresses!.metrics!.address, '127.0.0.1')
    assert.notEqual(server.addresses!.metrics!.port, portOf(server))
    const livez = await request(`${metricsUrl}/livez`)
    assert.deepEqual([livez.status, livez.body.toString()], [200, '[+]ping ok\n'])
    assert.equal(livez.headers['content-type'], 'text/plain; charset=utf-8')
    const readyz = await request(`${metricsUrl}/readyz`)
    assert.deepEqual([readyz.status, readyz.body.toString()], [200, '[+]listeners ok\n[+]history ok\n[+]shutdown ok\n'])
    const head = await request(`${metricsUrl}/metrics`, {method: 'HEAD'})
    assert.deepEqual([head.status, head.body.length], [200, 0])
    assert.ok(Number(head.headers['content-length']) > 0)
    assert.equal((await request(`${metricsUrl}/`)).status, 404)
    assert.equal((await request(`${metricsUrl}/metrics/x`)).status, 404)
    assert.equal((await request(`${metricsUrl}/metrics`, {method: 'POST', body: 'x'})).status, 405)
  })

  it('is not served on the bus port: /metrics, /livez and /readyz there are 404, credentials and all', async () => {
    for (const path of ['/metrics', '/livez', '/readyz']) {
      const reply = await request(`${server.url()}${path}`, {headers: AUTH})
      assert.equal(reply.status, 404, path)
    }
  })

  it('the main port probe README gives, OPTIONS /msgbus/: 204 with credentials, 401 without', async () => {
    const probe = await request(`${server.url()}/msgbus/`, {method: 'OPTIONS', headers: AUTH})
    assert.deepEqual([probe.status, probe.headers.allow], [204, 'GET, HEAD, POST, OPTIONS'])
    assert.equal((await request(`${server.url()}/msgbus/`, {method: 'OPTIONS'})).status, 401)
  })

  it('counters move: publishes, deliveries by format, bytes in and out, answers by status (a 401 too), publish latency; subscriber and channel gauges go up and down', async () => {
    const before = await scrape(metricsUrl)
    const formats = ['multipart', 'sse', 'ndjson', 'raw']
    const readers = await Promise.all(
      formats.map((format) => RawClient.open(portOf(server), `GET /msgbus/counted?format=${format} HTTP/1.1\r\nHost: x\r\n${basic('op', SECRET)}\r\n`)),
    )
    await Promise.all(readers.map((reader) => reader.until((text) => text.includes('\r\n\r\n'))))
    await until(() => server.bus.subscriberCount === 4, 'four subscribers')
    const open = await scrape(metricsUrl)
    assert.deepEqual(moved(before, open, ['msgbus_subscribers', 'msgbus_channels']), {msgbus_subscribers: 4, msgbus_channels: 1})

    const bodies = ['one', 'two', 'three!']
    for (const body of bodies) assert.equal((await publishTo(server, 'counted', body)).status, 204)
    const refused = await request(`${server.url()}/msgbus/counted`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: 'no'})
    assert.equal(refused.status, 401)
    await Promise.all(readers.map((reader) => reader.until((text) => text.includes('three!'))))
    // One more that has the three replayed from the history.
    const late = await RawClient.open(portOf(server), `GET /msgbus/counted?format=ndjson&since=all HTTP/1.1\r\nHost: x\r\n${basic('op', SECRET)}\r\n`)
    await late.until((text) => text.includes('three!'))
    readers.push(late)

    const after = await scrape(metricsUrl)
    const deliveries = Object.fromEntries(formats.map((format) => [`msgbus_deliveries_total{format="${format}"}`, format === 'ndjson' ? 6 : 3]))
    assert.deepEqual(
      moved(before, after, [
        'msgbus_messages_published_total',
        'msgbus_bytes_in_total',
        ...Object.keys(deliveries),
        'msgbus_http_responses_total{code="200"}',
        'msgbus_http_responses_total{code="204"}',
        'msgbus_http_responses_total{code="401"}',
        'msgbus_publish_duration_seconds_count',
        'msgbus_publish_duration_seconds_bucket{le="+Inf"}',
      ]),
      {
        msgbus_messages_published_total: 3,
        msgbus_bytes_in_total: 'onetwothree!'.length,
        ...deliveries,
        // The five streams; the scrapes are on the other listener, not counted.
        'msgbus_http_responses_total{code="200"}': 5,
        'msgbus_http_responses_total{code="204"}': 3,
        'msgbus_http_responses_total{code="401"}': 1,
        msgbus_publish_duration_seconds_count: 3,
        'msgbus_publish_duration_seconds_bucket{le="+Inf"}': 3,
      },
    )
    // Every byte written to the streams, heads and replays included, is what the readers received.
    const received = readers.reduce((sum, reader) => sum + reader.data.length, 0)
    assert.equal(moved(before, after, ['msgbus_bytes_out_total']).msgbus_bytes_out_total, received)
    assert.ok(after.get('msgbus_publish_duration_seconds_sum')! > before.get('msgbus_publish_duration_seconds_sum')!)
    assert.equal(after.get('msgbus_history_messages'), server.bus.log.size)

    for (const reader of readers) reader.close()
    await until(() => server.bus.subscriberCount === 0, 'the readers to be gone')
    const closed = await scrape(metricsUrl)
    assert.deepEqual(moved(before, closed, ['msgbus_subscribers', 'msgbus_channels']), {msgbus_subscribers: 0, msgbus_channels: 0})
    // Closed streams keep their counts.
    assert.equal(moved(before, closed, ['msgbus_bytes_out_total']).msgbus_bytes_out_total, received)
  })

  it('process and event-loop metrics, and the version', async () => {
    const values = await scrape(metricsUrl)
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.ok(values.has(name), name)
    }

    assert.ok([...values.keys()].some((key) => /^msgbus_build_info\{version="\d+\.\d+\.\d+.*"\}$/.test(key)))
  })

  it('a slow subscriber cut shows in msgbus_slow_subscribers_disconnected_total', async () => {
    const before = await scrape(metricsUrl)
    const stalled = await RawClient.open(portOf(server), `GET /msgbus/flood?format=raw HTTP/1.1\r\nHost: x\r\n${basic('op', SECRET)}\r\n`)
    await stalled.until((text) => text.includes('\r\n\r\n'))
    stalled.socket.pause()
    await until(() => server.bus.subscriberCount === 1, 'the reader to subscribe')
    await floodUntil(server, 'flood', Buffer.alloc(256 * 1024, 0x61), () => server.counters().slowDisconnects > before.get('msgbus_slow_subscribers_disconnected_total')!)
    await until(() => server.bus.subscriberCount === 0, 'the cut reader to be gone')
    const after = await scrape(metricsUrl)
    assert.deepEqual(moved(before, after, ['msgbus_slow_subscribers_disconnected_total', 'msgbus_subscribers', 'msgbus_messages_dropped_total']), {
      msgbus_slow_subscribers_disconnected_total: 1,
      msgbus_subscribers: 0,
      msgbus_messages_dropped_total: 0,
    })
    stalled.close()
  })

  it('a bad --metrics value is refused at start with a reason', async () => {
    for (const value of ['x:y', '70000', '127.0.0.1:']) {
      await assert.rejects(createBus({port: 0, address: '127.0.0.1', metrics: value}).start(), (error: MsgbusError) => {
        assert.equal(error.code, 'ERR_MSGBUS_OPTION_INVALID')
        assert.match(error.message, /--metrics ".*" is not \[ADDRESS:\]PORT/)
        return true
      })
    }
  })

  // Last: it stops the server.
  it('/readyz is 503 once the server is shutting down, saying which checks failed, while requests in flight finish', async () => {
    // A publish whose body is still coming keeps the stop waiting.
    const publisher = await RawClient.open(portOf(server), `POST /msgbus/x HTTP/1.1\r\nHost: x\r\n${basic('op', SECRET)}Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nhalf`)
    await until(() => server.counters().bodyMemory > 0, 'the first half of the body to arrive')
    const stopped = server.stop(20000)
    const readyz = await request(`${metricsUrl}/readyz`)
    assert.equal(readyz.status, 503)
    assert.equal(readyz.body.toString(), '[-]listeners failed: 1 of 1 listeners closed\n[+]history ok\n[-]shutdown failed: the server is shutting down\n')
    assert.equal((await request(`${metricsUrl}/livez`)).status, 200)
    publisher.socket.write('+rest!')
    await publisher.until((text) => text.startsWith('HTTP/1.1 204'))
    publisher.close()
    await stopped
    await assert.rejects(request(`${metricsUrl}/livez`), /ECONNREFUSED/)
  })
})

describe('msgbus serve --metrics', function () {
  this.timeout(30000)
  const inTemp = tempFolder('msgbus-metrics-')

  it('logs the bound metrics address; /readyz turns 503 when the history store cannot write (a file size limit: EFBIG), and says why', async function () {
    if (!existsSync('/usr/bin/prlimit')) this.skip()
    // 1 MiB: the segment's header fits, a 2 MiB message does not.
    const child = spawn('/usr/bin/prlimit', ['--fsize=1048576', process.execPath, BIN, 'serve', '--port', '0', '--address', '127.0.0.1', '--metrics', '127.0.0.1:0', '--history-dir', inTemp('history')], {
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    try {
      await until(() => /listen metrics on/.test(stderr), () => `the metrics listen line: ${stderr}`, {timeoutMs: 15000, stop: () => child.exitCode !== null && `serve exited: ${stderr}`})
      assert.match(stderr, /listen metrics on 127\.0\.0\.1:\d+ \(\/metrics, \/livez, \/readyz\)\n/)
      const metrics = `http://127.0.0.1:${/listen metrics on 127\.0\.0\.1:(\d+)/.exec(stderr)![1]}`
      const bus = `http://127.0.0.1:${/listen HTTP on 127\.0\.0\.1:(\d+)/.exec(stderr)![1]}`
      assert.equal((await request(`${metrics}/readyz`)).status, 200)
      assert.equal((await request(`${bus}/msgbus/`, {method: 'OPTIONS'})).status, 204)

      const big = await request(`${bus}/msgbus/x`, {method: 'POST', headers: {'Content-Type': 'application/octet-stream'}, body: Buffer.alloc(2 * MiB)})
      assert.equal(big.status, 500, big.body.toString())
      const readyz = await request(`${metrics}/readyz`)
      assert.equal(readyz.status, 503)
      assert.match(readyz.body.toString(), /^\[\+\]listeners ok\n\[-\]history failed: history dir \S+: cannot write a message: EFBIG\n\[\+\]shutdown ok\n$/)
      assert.equal((await request(`${metrics}/livez`)).status, 200)
      const values = await scrape(metrics)
      assert.equal(values.get('msgbus_http_responses_total{code="500"}'), 1)
    } finally {
      child.kill('SIGTERM')
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)))
    }
  })

  it('a bad value: one line naming it, exit 2 (a usage error)', async () => {
    const result = await msgbus(['serve', '--port', '0', '--metrics', 'nowhere'])
    assert.equal(result.code, 2)
    assert.equal(result.stderr, 'msgbus serve: --metrics "nowhere" is not [ADDRESS:]PORT (as in 9464, 127.0.0.1:9464 or [::1]:9464)\n')
  })

  it('msgbus/server loads prom-client only when metrics are asked for', async () => {
    const script = `
      import {createRequire} from 'node:module'
      import {createBus} from './dist/lib/server/index.js'
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/prom-client/'))
      const plain = createBus({port: 0, address: '127.0.0.1'})
      await plain.start()
      const before = loaded()
      await plain.stop()
      const measured = createBus({port: 0, address: '127.0.0.1', metrics: '127.0.0.1:0'})
      await measured.start()
      console.log(JSON.stringify([before, loaded()]))
      await measured.stop()`
    const result = await run(process.execPath, ['--input-type=module', '-e', script])
    assert.equal(result.stdout.trim(), '[false,true]', result.stderr)
  })
})
