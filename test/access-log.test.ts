// The access log: one line per refused or failed request at the default
// level, bounded against floods, and --log-format json for log shippers.
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {PassThrough} from 'node:stream'
import {LogLevel, type LogFields, type Logger} from '../src/lib/server/ops/log.js'
import {streamLogger} from '../src/lib/server/ops/logger.js'
import {BIN, RawClient, portOf, request, startBus, stopAll, until, type Reply} from './support/harness.js'

interface Line {
  level: 'info' | 'warn'
  event: string
  detail: string
  fields: LogFields
}

/** A logger at the default level that keeps its lines. */
function capture(): Logger & {lines: Line[]} {
  const lines: Line[] = []
  return {
    level: LogLevel.Always,
    lines,
    log(level, event, detail, fields = {}) {
      if (level <= LogLevel.Always) lines.push({level: 'info', event, detail, fields})
    },
    warn(event, detail, fields = {}) {
      lines.push({level: 'warn', event, detail, fields})
    },
  }
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

describe('access log', function () {
  this.timeout(30_000)
  afterEach(stopAll)

  it('a 401, a 403, a 404 and a 413 each give one line: peer, user, method, target, status and the reason the client got', async () => {
    const logger = capture()
    const server = await startBus({logger, secret: 'letmein', maxMessageSize: 16})
    const base = server.url()
    const refused = () => logger.lines.filter((line) => line.event === 'refused')
    const cases: Array<[number, () => Promise<Reply>]> = [
      [401, () => request(`${base}/msgbus/news?format=sse`, {headers: {Authorization: basic('mallory', 'guessed-password')}})],
      [403, () => request(`${base}/msgbus/news`, {method: 'POST', headers: {Authorization: basic('alice', 'letmein'), Origin: 'https://evil.example', 'Content-Type': 'text/plain'}, body: 'x'})],
      [404, () => request(`${base}/no/such/page`, {headers: {Authorization: basic('alice', 'letmein')}})],
      [413, () => request(`${base}/msgbus/news`, {method: 'POST', headers: {Authorization: basic('alice', 'letmein'), 'Content-Type': 'text/plain'}, body: 'x'.repeat(100)})],
    ]
    for (const [status, send] of cases) {
      const before = refused().length
      const reply = await send()
      assert.equal(reply.status, status)
      await until(() => refused().length > before, `a line for the ${status}`)
      const added = refused().slice(before)
      assert.equal(added.length, 1, `one line for the ${status}: ${JSON.stringify(added)}`)
      const [line] = added
      assert.equal(line.fields.status, status)
      // The reason is the one-line body the client got.
      assert.equal(line.fields.reason, reply.body.toString().trim())
      assert.match(String(line.fields.peer), /^127\.0\.0\.1:\d+$/)
      assert.ok(line.detail.includes(`" ${status} ${line.fields.reason}`), line.detail)
    }

    const [unauthorised, forbidden, missing, tooLarge] = refused()
    assert.equal(unauthorised.fields.user, 'mallory')
    assert.equal(unauthorised.fields.path, '/msgbus/news?format=sse')
    assert.match(unauthorised.detail, /^127\.0\.0\.1:\d+ mallory "GET \/msgbus\/news\?format=sse" 401 authentication required$/)
    assert.equal(forbidden.fields.method, 'POST')
    assert.equal(missing.fields.path, '/no/such/page')
    assert.equal(tooLarge.fields.user, 'alice')
    // Never a password, wrong or right.
    const everything = JSON.stringify(logger.lines)
    assert.ok(!everything.includes('guessed-password') && !everything.includes('letmein'), everything)
    // A request Node's parser refused: no method or target to give.
    const garbage = await RawClient.open(portOf(server), 'NOT HTTP AT ALL\r\n\r\n')
    await garbage.until((text) => text.startsWith('HTTP/1.1 400'))
    await until(() => refused().some((line) => line.fields.status === 400), 'a line for the 400')
    assert.match(refused().find((line) => line.fields.status === 400)!.detail, /^127\.0\.0\.1:\d+ - "- -" 400 bad request: /)
    garbage.close()
    // What was answered is not logged at the default level.
    const before = logger.lines.length
    assert.equal((await request(`${base}/msgbus/news`, {method: 'POST', headers: {Authorization: basic('alice', 'letmein'), 'Content-Type': 'text/plain'}, body: 'ok'})).status, 204)
    assert.deepEqual(logger.lines.slice(before), [])
  })

  it('a flood of bad requests is bounded, and what was held back is summarised in one line', async () => {
    const logger = capture()
    const limits = {linesPerSecond: 5, burst: 10, summaryMs: 500}
    const server = await startBus({logger, accessLog: limits})
    const flood = 200
    const started = performance.now()
    for (let sent = 0; sent < flood; sent += 20) {
      await Promise.all(Array.from({length: 20}, (_, i) => request(`${server.url()}/flood/${sent + i}`)))
    }

    const seconds = (performance.now() - started) / 1000
    const logged = () => logger.lines.filter((line) => line.event === 'refused' && line.fields.status === 404)
    // A flood longer than summaryMs has a summary for each stretch.
    const summaries = () => logger.lines.filter((line) => line.event === 'refused' && line.fields.held !== undefined)
    const held = () => summaries().reduce((sum, line) => sum + Number(line.fields.held), 0)
    // Every request is accounted for: logged, or counted in a summary.
    await until(() => logged().length + held() === flood, () => `${flood} requests accounted for: ${logged().length} logged, ${held()} held; ${JSON.stringify(logger.lines.slice(-2))}`)
    assert.ok(logged().length <= limits.burst + Math.ceil(seconds * limits.linesPerSecond) + 1, `${logged().length} lines in ${seconds.toFixed(1)} s`)
    assert.ok(summaries().length <= Math.ceil((seconds * 1000) / limits.summaryMs) + 1, `${summaries().length} summaries in ${seconds.toFixed(1)} s`)
    for (const {fields, detail, level} of summaries()) {
      assert.equal(level, 'warn')
      assert.deepEqual(fields.byStatus, {404: fields.held})
      assert.deepEqual(fields.byAddress, {'127.0.0.1': fields.held})
      assert.match(detail, new RegExp(`^${fields.held} more refused requests? not logged in \\d+ s \\(at most 5 lines a second, bursts of 10\\): 404 x${fields.held}; from 127\\.0\\.0\\.1 ${fields.held}$`))
    }
  })

  it('json: every line one object with time, level, event and msg, and the fields of refusals and stats', async () => {
    const stream = new PassThrough()
    let text = ''
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()))
    const server = await startBus({logger: streamLogger(LogLevel.Always, {stream, format: 'json'}), statsInterval: 1})
    assert.equal((await request(`${server.url()}/missing`)).status, 404)
    await until(() => /"event":"stats"/.test(text), () => `a stats line: ${text}`)
    const lines = text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    for (const line of lines) {
      assert.ok(!Number.isNaN(Date.parse(String(line.time))), `an ISO time: ${JSON.stringify(line)}`)
      assert.ok(line.level === 'info' || line.level === 'warn')
      assert.equal(typeof line.event, 'string')
      assert.equal(typeof line.msg, 'string')
    }

    const events = lines.map((line) => line.event)
    for (const event of ['listen', 'protections', 'refused', 'stats']) assert.ok(events.includes(event), `${event} in ${events.join(', ')}`)
    const refused = lines.find((line) => line.event === 'refused')!
    assert.deepEqual({method: refused.method, path: refused.path, status: refused.status, reason: refused.reason}, {method: 'GET', path: '/missing', status: 404, reason: 'not found: /missing'})
    const stats = lines.find((line) => line.event === 'stats')!
    assert.equal(typeof stats.connections, 'number')
    assert.equal(typeof stats.loopP99Ms, 'number')
    const protections = lines.find((line) => line.event === 'protections')!
    assert.equal(protections.auth, 'none')
  })

  it('serve --log-format json -v: refusals and a subscription\'s end (with how long it lasted) as JSON lines', async () => {
    const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--address', '127.0.0.1', '--log-format', 'json', '-v', '--secret', 's3cret', '--max-message-size', '10'], {
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let text = ''
    child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()))
    try {
      const parsed = () => text.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>)
      await until(() => parsed().some((line) => line.event === 'protections'), () => `serve to listen: ${text}`, {timeoutMs: 10_000})
      const port = /:(\d+)/.exec(String(parsed().find((line) => line.event === 'listen')!.msg))![1]
      const protections = parsed().find((line) => line.event === 'protections')!
      assert.match(String(protections.msg), /^auth=secret /)
      // Sizes as a user types them: 10, 8MiB (not "10bytes").
      assert.match(String(protections.msg), / message=10 form=64MiB /)
      assert.equal((await request(`http://127.0.0.1:${port}/msgbus/x`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: 'x'})).status, 401)
      const published = await request(`http://127.0.0.1:${port}/msgbus/x`, {method: 'POST', headers: {'Content-Type': 'text/plain', Authorization: basic('bob', 's3cret')}, body: 'x'})
      assert.equal(published.status, 204)
      // A poll: a subscription that ends by itself, after the one message kept.
      assert.equal((await request(`http://127.0.0.1:${port}/msgbus/x?format=ndjson&poll=1`, {headers: {Authorization: basic('bob', 's3cret')}})).status, 200)
      await until(() => parsed().some((line) => line.event === 'unsubscribe'), () => `the end of the subscription: ${text}`)
      const refused = parsed().find((line) => line.event === 'refused')!
      assert.equal(refused.status, 401)
      const ended = parsed().find((line) => line.event === 'unsubscribe')!
      assert.equal(ended.messages, 1)
      assert.match(String(ended.msg), / after 1 message, /)
      assert.equal(ended.format, 'ndjson')
      assert.equal(typeof ended.seconds, 'number')
    } finally {
      child.kill('SIGTERM')
    }
  })
})
