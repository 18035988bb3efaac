// `msgbus dump`, the built CLI in its own process, against a real server fed
// by curl publishers; shell pipelines, signals, reconnects, and a recorded
// stream of the 2007 C msgbus replayed in small random slices.
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {readFileSync} from 'node:fs'
import {createServer, type Server, type Socket} from 'node:net'
import {join} from 'node:path'
import type {BusServer} from '../src/lib/index.js'
import {BIN, curl, dropStreams, escapeRegExp, freePort, msgbus, MsgbusProcess, publish, publishEach, request, ROOT, ServeProcess, startBus, stopAll, streamsBesides, textMessage, type RunResult, tempFolder, until, writeInSlices} from './support/harness.js'
import {randomSource} from './support/random.js'

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const SUMMARY = /^received (\d+) msgs? over \d+\.\d secs \(\d+\.\d mps\)$/

/** `msgbus dump ARGS` in the background: output kept, exit awaited. */
class DumpProcess extends MsgbusProcess {
  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    super(['dump', ...args], env)
  }

  /** Starts dump and waits until the server counts its subscription. */
  static async subscribed(server: BusServer, args: string[]): Promise<DumpProcess> {
    const before = server.bus.subscriberCount
    const dump = new DumpProcess(['--url', server.url(), ...args])
    await dump.until(() => server.bus.subscriberCount > before, 'the subscription')
    return dump
  }
}

const children = new Set<ChildProcess>()
const serves = new Set<ServeProcess>()
const servers = new Set<Server>()

/** Publishes with curl; resolves with the status and the message's id. */
async function curlPost(url: string, body: Buffer | string, type = 'text/plain', extra: string[] = []): Promise<{status: number; id: string}> {
  const result = await curl(['-o', '/dev/null', '-w', '%{http_code} %header{msgbus-id}', '-H', `Content-Type: ${type}`, '--data-binary', '@-', ...extra, url], {input: body})
  assert.equal(result.code, 0, result.stderr)
  const [status, id] = result.stdout.split(' ')
  return {status: Number(status), id}
}

/** `msgbus dump ARGS` to its end. */
function runDump(args: string[], options: {env?: NodeJS.ProcessEnv; timeoutMs?: number} = {}): Promise<RunResult> {
  return msgbus(['dump', ...args], options)
}

/** Publishes to a `msgbus serve` process until a subscriber is there to get it; returns how many pings it took. */
async function pingUntilSubscribed(base: string, channel: string, timeoutMs = 5000): Promise<number> {
  let pings = 0
  await until(async () => {
    const reply = await request(`${base}/msgbus/${channel}`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: `ping ${++pings}`})
    assert.equal(reply.status, 204)
    return Number(reply.headers['msgbus-subscribers']) > 0
  }, 'a subscriber', {timeoutMs, everyMs: 50})
  return pings
}

/**
 * Splits a default-format line; the type may hold spaces (`text/plain;
 * charset=utf-8`), so it is given to match the rest exactly.
 */
function assertLine(line: string, time: {from: number; to: number}, rest: string): void {
  const space = line.indexOf(' ')
  const stamp = line.slice(0, space)
  assert.match(stamp, ISO, line)
  const ms = Date.parse(stamp)
  assert.ok(ms >= time.from - 5 && ms <= time.to + 5, `${stamp} is when it was received`)
  assert.equal(line.slice(space + 1), rest)
}


describe('msgbus dump', function () {
  this.timeout(15000)

  const inTemp = tempFolder('msgbus-dump-')

  afterEach(async () => {
    MsgbusProcess.killAll()
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue
      // A shell pipeline runs in its own process group: end the group, not only the shell.
      if (child.spawnargs[0] === 'bash') {
        try {
          process.kill(-child.pid!, 'SIGKILL')
        } catch {}
      } else {
        child.kill('SIGKILL')
      }
    }

    children.clear()
    // ServeProcess.stop() waits for an exit that already happened when a signal ended it: skip those.
    await Promise.all([...serves].filter((serve) => serve.child.exitCode === null && serve.child.signalCode === null).map((serve) => serve.stop('SIGKILL')))
    serves.clear()
    for (const server of servers) server.close()
    servers.clear()
    await stopAll()
  })

  describe('output formats', () => {
    it('default: one line per message: time, channel, type, sender or -, length, escaped body; binary as length and type @slow', async () => {
      const server = await startBus()
      const from = Date.now()
      const dump = await DumpProcess.subscribed(server, [])
      const base = `${server.url()}/msgbus`
      const text = 'line1\nline2\r\n\ttab\x01\x7f back\\slash é\u2028'
      assert.equal((await curlPost(`${base}/a/b`, text)).status, 204)
      await curlPost(`${base}/img`, Buffer.from('89504e470d0a1a0a', 'hex'), 'image/png', ['-u', 'alice:pw'])
      await curlPost(`${base}/bad`, Buffer.from([0x68, 0xff, 0xfe]), 'text/plain')
      await curlPost(`${base}/json`, '{"k":"v"}', 'application/json; charset=utf-8', ['-u', 'bob:pw'])
      await curlPost(`${base}/empty`, '', 'text/plain')
      await curlPost(`${base}/octets`, 'looks like text', 'application/octet-stream')
      const lines = await dump.untilLines(6)
      const time = {from, to: Date.now()}
      assertLine(lines[0], time, `a/b text/plain - ${Buffer.byteLength(text)} line1\\nline2\\r\\n\\ttab\\x01\\x7f back\\\\slash é\\u2028`)
      assertLine(lines[1], time, 'img image/png alice 8 [8 bytes of image/png]')
      assertLine(lines[2], time, 'bad text/plain - 3 [3 bytes of text/plain]')
      assertLine(lines[3], time, 'json application/json;charset=utf-8 bob 9 {"k":"v"}')
      assertLine(lines[4], time, 'empty text/plain - 0 ')
      assertLine(lines[5], time, 'octets application/octet-stream - 15 [15 bytes of application/octet-stream]')
      assert.equal(dump.stderr, '')
      assert.ok(!/\x1b\[/.test(dump.stdout), 'no colours on a pipe')
    })

    it('--raw: bodies only, a text body followed by a newline unless it ends in one, any other byte for byte @slow', async () => {
      const server = await startBus()
      const dump = await DumpProcess.subscribed(server, ['--raw'])
      const base = `${server.url()}/msgbus`
      const binary = Buffer.from([0, 1, 2, 0xff, 0x0d])
      await curlPost(`${base}/r`, 'no newline')
      await curlPost(`${base}/r`, 'own newline\n')
      await curlPost(`${base}/r`, binary, 'application/octet-stream')
      await curlPost(`${base}/r`, '')
      await curlPost(`${base}/r`, 'two\n\n')
      const expected = Buffer.concat([Buffer.from('no newline\nown newline\n'), binary, Buffer.from('\ntwo\n\n')])
      await dump.until(() => dump.output.length >= expected.length, 'the bodies')
      assert.ok(dump.output.equals(expected), JSON.stringify(dump.output.toString('latin1')))
    })

    it('--json: NDJSON with id, channel, type, sender (null), time, length, body; base64 for non-text bodies @slow', async () => {
      const server = await startBus()
      const from = Date.now()
      const dump = await DumpProcess.subscribed(server, ['--json'])
      const base = `${server.url()}/msgbus`
      const png = Buffer.from('89504e470d0a1a0a0000', 'hex')
      const sent = [
        await curlPost(`${base}/text`, 'héllo\nworld', 'text/plain; charset=utf-8'),
        // A user name beyond ASCII travels as UTF-8 in From: and comes out as it went in.
        await curlPost(`${base}/pics/cat`, png, 'image/png', ['-u', 'bøb 🐝:pw']),
        await curlPost(`${base}/text`, Buffer.from([0xc3, 0x28]), 'text/plain'),
        await curlPost(`${base}/data`, '{"n":1}', 'application/json'),
        await curlPost(`${base}/data`, '<a/>', 'application/atom+xml'),
      ]
      const lines = await dump.untilLines(5)
      const to = Date.now()
      const objects = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
      for (const object of objects) {
        assert.match(object.time as string, ISO)
        const ms = Date.parse(object.time as string)
        assert.ok(ms >= from && ms <= to)
      }

      const strip = ({time: _time, ...rest}: Record<string, unknown>) => rest
      assert.deepEqual(objects.map(strip), [
        {id: sent[0].id, channel: 'text', type: 'text/plain; charset=utf-8', sender: null, length: 12, body: 'héllo\nworld'},
        {id: sent[1].id, channel: 'pics/cat', type: 'image/png', sender: 'bøb 🐝', length: 10, body: png.toString('base64'), encoding: 'base64'},
        {id: sent[2].id, channel: 'text', type: 'text/plain', sender: null, length: 2, body: 'wyg=', encoding: 'base64'},
        {id: sent[3].id, channel: 'data', type: 'application/json', sender: null, length: 7, body: '{"n":1}'},
        {id: sent[4].id, channel: 'data', type: 'application/atom+xml', sender: null, length: 4, body: '<a/>'},
      ])
      assert.deepEqual(Object.keys(objects[0]), ['id', 'channel', 'type', 'sender', 'time', 'length', 'body'])
    })

    it('-q: the part headers only, a blank line after each @slow', async () => {
      const server = await startBus()
      const dump = await DumpProcess.subscribed(server, ['-q'])
      const {id} = await curlPost(`${server.url()}/msgbus/q%20x`, 'secret body', 'text/plain', ['-u', 'alice:pw'])
      await dump.until(() => dump.stdout.includes('\n\n'), 'a header block')
      const block = dump.stdout
      assert.ok(!block.includes('secret body'))
      const lines = block.split('\n')
      assert.deepEqual(lines.slice(-2), ['', ''], 'a blank line ends the block')
      assert.deepEqual(lines.slice(0, -2), ['Content-Type: text/plain', 'Content-Length: 11', 'Content-Location: /msgbus/q%20x', `Message-ID: ${id}`, 'From: alice'])
    })
  })

  describe('filters, count and timeout', () => {
    it('-t and -s filter on the server: only matching messages arrive @slow', async () => {
      const server = await startBus()
      const base = `${server.url()}/msgbus`
      const byType = await DumpProcess.subscribed(server, ['--raw', '-t', 'text/*,!text/html'])
      const bySender = await DumpProcess.subscribed(server, ['--raw', '-s', 'alice,b*'])
      await curlPost(`${base}/f`, 'png', 'image/png', ['-u', 'alice:pw'])
      await curlPost(`${base}/f`, 'plain', 'text/plain; charset=utf-8', ['-u', 'carol:pw'])
      await curlPost(`${base}/f`, '<p>html</p>', 'text/html', ['-u', 'bob:pw'])
      await curlPost(`${base}/f`, 'anonymous', 'text/csv')
      await curlPost(`${base}/f`, 'end', 'text/plain', ['-u', 'bea:pw'])
      await byType.untilLines(3)
      await bySender.untilLines(2)
      assert.deepEqual(byType.lines(), ['plain', 'anonymous', 'end'])
      // --raw writes the image/png body as it is, with no newline after it.
      assert.equal(bySender.stdout, 'png<p>html</p>\nend\n')
    })

    it('-n 2 exits 0 after two messages', async () => {
      const server = await startBus()
      const dump = await DumpProcess.subscribed(server, ['-n', '2', '--raw'])
      await curlPost(`${server.url()}/msgbus/n`, 'one')
      await curlPost(`${server.url()}/msgbus/n`, 'two')
      const {code} = await dump.exit()
      assert.equal(code, 0)
      assert.equal(dump.stdout, 'one\ntwo\n')
      assert.equal(dump.stderr, '')
    })

    it('--timeout 1 exits 0; with -n 5 not reached it exits non-zero with a one-line summary @slow', async () => {
      const server = await startBus()
      const started = Date.now()
      const plain = await runDump(['--url', server.url(), '--timeout', '1'])
      const ms = Date.now() - started
      assert.equal(plain.code, 0, plain.stderr)
      assert.deepEqual([plain.stdout, plain.stderr], ['', ''])
      // At least the second asked for; the upper bound, start-up included, leaves a busy machine room and still fails a
      // timeout not kept (a run that never ends is killed by run() at 15 s).
      assert.ok(ms >= 1000 && ms < 8000, `${ms} ms`)

      const counted = new DumpProcess(['--url', server.url(), '--timeout', '1', '-n', '5', '--raw'])
      await counted.until(() => server.bus.subscriberCount > 0, 'the subscription')
      await curlPost(`${server.url()}/msgbus/t`, 'only one')
      const {code} = await counted.exit()
      assert.equal(code, 1)
      assert.equal(counted.stdout, 'only one\n')
      assert.match(counted.stderr, /^msgbus dump: received 1 msg over 1\.\d secs \(\d+\.\d mps\): fewer than 5 before the timeout\n$/)
    })
  })

  describe('every channel', () => {
    it('`dump /` and `dump` with no channel show each message\'s channel @slow', async () => {
      const server = await startBus()
      const slash = await DumpProcess.subscribed(server, ['/'])
      const none = await DumpProcess.subscribed(server, [])
      const base = `${server.url()}/msgbus`
      for (const channel of ['alpha', 'sensors/kitchen', '%C3%A9t%C3%A9', 'sensors%2Fgarden']) await curlPost(`${base}/${channel}`, `on ${channel}`)
      for (const dump of [slash, none]) {
        const lines = await dump.untilLines(4)
        assert.deepEqual(
          lines.map((line) => line.split(' ')[1]),
          ['alpha', 'sensors/kitchen', 'été', 'sensors/garden'],
        )
      }
    })

    it('a channel argument subscribes to that channel only; a full URL works too @slow', async () => {
      const server = await startBus()
      const named = await DumpProcess.subscribed(server, ['news', '--raw'])
      const full = new DumpProcess([`${server.url()}/msgbus/news`, '--raw'])
      await full.until(() => server.bus.subscriberCount >= 2, 'the second subscription')
      await curlPost(`${server.url()}/msgbus/other`, 'other')
      await curlPost(`${server.url()}/msgbus/news`, 'news')
      for (const dump of [named, full]) assert.deepEqual(await dump.untilLines(1), ['news'])
      await curlPost(`${server.url()}/msgbus/news`, 'more')
      await named.untilLines(2)
      assert.deepEqual(named.lines(), ['news', 'more'])
    })
  })

  describe('in shell pipelines', () => {
    it('`msgbus dump / | grep error` prints only the matching lines, as they come @slow', async () => {
      const server = await startBus()
      const before = server.bus.subscriberCount
      const shell = spawn('bash', ['-c', `"${process.execPath}" "${BIN}" dump / --url ${server.url()} -n 4 | grep --line-buffered error`], {
        env: {...process.env, NO_COLOR: '1'},
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      })
      children.add(shell)
      let stdout = ''
      let stderr = ''
      shell.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
      shell.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      const exited = once(shell, 'close')
      await until(() => server.bus.subscriberCount > before, 'dump to subscribe')

      await curlPost(`${server.url()}/msgbus/app`, 'all good')
      await curlPost(`${server.url()}/msgbus/disk`, 'disk error on sda')
      // The match is printed before the pipeline ends: dump writes each line as it comes.
      await until(() => stdout.includes('disk error'), () => `the match; got ${JSON.stringify(stdout)} ${stderr}`)

      await curlPost(`${server.url()}/msgbus/app`, 'fine')
      await curlPost(`${server.url()}/msgbus/errors`, 'another one')
      const [code] = (await exited) as [number | null]
      assert.equal(code, 0, stderr)
      assert.equal(stderr, '')
      const lines = stdout.split('\n').slice(0, -1)
      assert.equal(lines.length, 2, stdout)
      assert.match(lines[0], / disk text\/plain - 17 disk error on sda$/)
      assert.match(lines[1], / errors text\/plain - 11 another one$/)
    })

    it('`msgbus dump / | head -1` ends quietly: dump exits 0, nothing on stderr @slow', async () => {
      const server = await startBus()
      const before = server.bus.subscriberCount
      const errors = inTemp('head-stderr.txt')
      const shell = spawn('bash', ['-c', `"${process.execPath}" "${BIN}" dump / --url ${server.url()} 2>"${errors}" | head -1; echo "status ` + '${PIPESTATUS[0]} ${PIPESTATUS[1]}"'], {
        env: {...process.env, NO_COLOR: '1'},
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      })
      children.add(shell)
      let stdout = ''
      shell.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
      let done = false
      const exited = once(shell, 'close').then(() => (done = true))
      await until(() => server.bus.subscriberCount > before, 'dump to subscribe')

      await curlPost(`${server.url()}/msgbus/h`, 'first')
      // dump learns that head has gone at its next write: keep publishing until the pipeline ends.
      let more = 0
      await until(async () => {
        if (done) return true
        await curlPost(`${server.url()}/msgbus/h`, `more ${more++}`)
        return false
      }, () => `the pipeline to end; got ${JSON.stringify(stdout)}`, {timeoutMs: 8000, everyMs: 100})

      await exited
      const lines = stdout.split('\n')
      assert.match(lines[0], / h text\/plain - 5 first$/)
      assert.deepEqual(lines.slice(1), ['status 0 0', ''], 'dump exited 0, as did head')
      assert.equal(readFileSync(errors, 'utf8'), '', 'nothing on stderr')
      assert.equal(server.bus.subscriberCount, before, 'the subscription is gone')
    })
  })

  describe('signals and connections', () => {
    it('SIGINT prints `received N msgs over S secs (R mps)` on stderr and exits 0 @slow', async () => {
      const server = await startBus()
      const dump = await DumpProcess.subscribed(server, [])
      for (const body of ['a', 'b', 'c']) await curlPost(`${server.url()}/msgbus/sig`, body)
      await dump.untilLines(3)
      dump.child.kill('SIGINT')
      const {code, signal} = await dump.exit()
      assert.deepEqual([code, signal], [0, null])
      assert.match(dump.stderr, /^[^\n]+\n$/, 'one line')
      const match = SUMMARY.exec(dump.stderr.trim())
      assert.ok(match, dump.stderr)
      assert.equal(match[1], '3')
    })

    it('reconnects by default: the server stops, starts again on the same port, and dump prints the next message @slow', async function () {
      this.timeout(20000)
      const port = await freePort()
      const args = ['-p', String(port), '-l', '127.0.0.1']
      let serve = await ServeProcess.start(args)
      serves.add(serve)
      const base = `http://127.0.0.1:${port}`
      const dump = new DumpProcess(['--url', base, '-v', '--raw'])
      await dump.until(() => /subscribed to /.test(dump.stderr), 'the first connection')
      await curlPost(`${base}/msgbus/r`, 'before')
      await dump.untilLines(1)
      await serve.stop()
      await dump.until(() => /disconnected from /.test(dump.stderr) && /reconnecting in /.test(dump.stderr), 'the disconnect')
      assert.ok(dump.running, 'dump keeps going')
      serve = await ServeProcess.start(args)
      serves.add(serve)
      await dump.until(() => dump.stderr.match(/subscribed to /g)!.length >= 2, 'the second connection', 10000)
      await curlPost(`${base}/msgbus/r`, 'after')
      await dump.untilLines(2)
      assert.deepEqual(dump.lines(), ['before', 'after'])
      dump.child.kill('SIGINT')
      // The server came back without a history (no --history-dir): it does not have the id dump resumes from, so dump cannot know that nothing was published in between.
      assert.equal((await dump.exit()).code, 1)
      assert.match(dump.stderr, /^msgbus dump: gap \(expired\): the messages after \S+ up to \S+ are no longer kept by the server$/m)
      assert.deepEqual(dump.stderr.trim().split('\n').slice(-2).map((line) => line.replace(/ over .*/, '')), ['received 2 msgs', 'msgbus dump: lost an unknown number at 1 point'])
    })

    it('--no-reconnect exits when the server goes away: 0 when it shuts down cleanly, 1 with one line when it dies @slow', async () => {
      let serve = await ServeProcess.start(['-p', '0', '-l', '127.0.0.1'])
      serves.add(serve)
      let base = `http://127.0.0.1:${serve.port()}`
      const graceful = new DumpProcess(['--url', base, '--no-reconnect', '--raw'])
      await pingUntilSubscribed(base, 'x')
      await serve.stop('SIGTERM')
      const first = await graceful.exit()
      assert.equal(first.code, 0, graceful.stderr)
      assert.equal(graceful.stderr, 'msgbus dump: the server is shutting down\n')

      serve = await ServeProcess.start(['-p', '0', '-l', '127.0.0.1'])
      serves.add(serve)
      base = `http://127.0.0.1:${serve.port()}`
      const killed = new DumpProcess(['--url', base, '--no-reconnect', '--raw'])
      await pingUntilSubscribed(base, 'x')
      await serve.stop('SIGKILL')
      const second = await killed.exit()
      assert.equal(second.code, 1)
      assert.match(killed.stderr, new RegExp(`^msgbus dump: ${escapeRegExp(base)}/msgbus/: [^\\n]+\\n$`))
    })

    it('a refused connection with --no-reconnect fails at once: one line, non-zero exit', async () => {
      const port = await freePort()
      const result = await runDump(['--url', `http://127.0.0.1:${port}`, '--no-reconnect'])
      assert.equal(result.code, 1)
      assert.equal(result.stdout, '')
      assert.equal(result.stderr, `msgbus dump: http://127.0.0.1:${port}/msgbus/: connection refused\n`)
    })

    it('a 401 (secret) fails at once even with reconnect on; with the secret it works @slow', async () => {
      const server = await startBus({secret: 'pw'})
      const started = Date.now()
      const anonymous = await runDump(['--url', server.url(), 'locked'], {timeoutMs: 8000})
      assert.ok(Date.now() - started < 3000, 'no retries')
      assert.equal(anonymous.code, 1)
      assert.equal(anonymous.stdout, '')
      assert.equal(anonymous.stderr, `msgbus dump: ${server.url()}/msgbus/locked: 401 authentication required\n`)
      const wrong = await runDump(['--url', server.url(), 'locked', '-u', 'eve:nope'])
      assert.equal(wrong.code, 1)
      assert.match(wrong.stderr, /^msgbus dump: [^\n]+: 401 authentication required\n$/)

      const allowed = await DumpProcess.subscribed(server, ['locked', '-u', 'eve:pw', '-n', '1', '--raw'])
      await publish(server, 'locked', 'in', 'text/plain', {Authorization: `Basic ${Buffer.from('ann:pw').toString('base64')}`})
      assert.equal((await allowed.exit()).code, 0)
      assert.equal(allowed.stdout, 'in\n')
    })

    it('a bad URL, a DNS failure: one line, non-zero exit @slow', async () => {
      const bad = await runDump(['--url', 'notaurl'])
      assert.equal(bad.code, 1)
      assert.equal(bad.stderr, 'msgbus dump: not a URL: "notaurl" (--url)\n')
      const dns = await runDump(['http://no-such-host.invalid/msgbus/x', '--no-reconnect'])
      assert.equal(dns.code, 1)
      assert.match(dns.stderr, /^msgbus dump: http:\/\/no-such-host\.invalid\/msgbus\/x: (host not found|host name lookup failed)[^\n]*\n$/)
    })
  })

  describe('history: --since, --poll, resume and gaps', () => {
    /** The bodies of default-format lines. */
    const bodiesOf = (stdout: string) => stdout.split('\n').slice(0, -1).map((line) => line.split(' ').at(-1))

    it('--since all --poll, and --poll alone: the messages kept, then exit 0; --since ID: those after it', async () => {
      const server = await startBus()
      const ids = await publishEach(server, 'kept', ['a', 'b', 'c'])
      for (const args of [['--since', 'all', '--poll'], ['--poll'], ['--since', '1h', '--poll', '--no-reconnect'], ['--since', '1h', '--poll', '--allow-loss']]) {
        const result = await runDump(['kept', '--url', server.url(), ...args])
        assert.deepEqual(bodiesOf(result.stdout), ['a', 'b', 'c'], args.join(' '))
        if (args[1] !== '1h') {
          assert.equal(result.code, 0, result.stderr)
          assert.equal(result.stderr, '')
          continue
        }

        // An hour back reaches before the server started: that part of it is gone, and dump says so, and fails unless told that is fine.
        assert.match(result.stderr, /^msgbus dump: gap \(expired\): the messages from the position asked for up to \S+ are no longer kept by the server\nmsgbus dump: lost an unknown number at 1 point\n$/)
        assert.equal(result.code, args.includes('--allow-loss') ? 0 : 1, result.stderr)
      }

      const after = await runDump(['kept', '--url', server.url(), '--since', ids[0], '--poll', '--json'])
      assert.equal(after.code, 0, after.stderr)
      assert.deepEqual(after.stdout.trim().split('\n').map((line) => (JSON.parse(line) as {id: string}).id), ids.slice(1))
    })

    it('--since then follows: the messages kept, then live ones', async () => {
      const server = await startBus()
      const ids = await publishEach(server, 'f', ['a', 'b'])
      const dump = await DumpProcess.subscribed(server, ['f', '--since', ids[0]])
      await dump.untilLines(1)
      await publishEach(server, 'f', ['live'])
      await dump.untilLines(2)
      assert.deepEqual(bodiesOf(dump.stdout), ['b', 'live'])
    })

    it('a bad --since: one line naming --since and the reason, non-zero exit, no request made', async () => {
      let connections = 0
      const listener = createServer((socket) => {
        connections++
        socket.destroy()
      })
      servers.add(listener)
      await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
      const url = `http://127.0.0.1:${(listener.address() as {port: number}).port}`
      for (const value of ['yesterday', '5 minutes', '12-']) {
        const result = await runDump(['foo', '--url', url, '--since', value])
        assert.notEqual(result.code, 0)
        assert.equal(result.stdout, '')
        assert.match(result.stderr, new RegExp(`^msgbus dump: --since: not a position: ${escapeRegExp(JSON.stringify(value))} \\(a message id`))
        assert.equal(result.stderr.split('\n').length, 2, result.stderr)
      }

      assert.equal(connections, 0)
    })

    it('a gap: one line on stderr, even without -v, and the loss summed up at the end; stdout has the messages only; exit 1', async () => {
      const server = await startBus({history: 3})
      const ids = await publishEach(server, 'g', ['m0', 'm1', 'm2', 'm3', 'm4'])
      const result = await runDump(['g', '--url', server.url(), '--since', ids[0], '--poll', '--json'])
      assert.equal(result.code, 1, result.stderr)
      assert.deepEqual(result.stdout.trim().split('\n').map((line) => (JSON.parse(line) as {body: string}).body), ['m2', 'm3', 'm4'])
      assert.equal(result.stderr, `msgbus dump: gap (expired): the messages after ${ids[0]} up to ${ids[1]} are no longer kept by the server\nmsgbus dump: lost an unknown number at 1 point\n`)
    })

    it('reconnects resume: what was published while the server had dropped the stream is printed, nothing twice', async () => {
      const server = await startBus()
      const dump = await DumpProcess.subscribed(server, ['r', '--raw'])
      await publishEach(server, 'r', ['a'])
      await dump.untilLines(1)
      const {dropped} = dropStreams(server, [textMessage('r', 'while away')])
      await until(() => streamsBesides(server, dropped) > 0, 'dump back')
      await publishEach(server, 'r', ['b'])
      await dump.untilLines(3)
      assert.deepEqual(dump.lines(), ['a', 'while away', 'b'])
      assert.equal(dump.stderr, '')
    })
  })

  describe('a recorded 2007 msgbus stream', () => {
    const fixtures = join(ROOT, 'test/fixtures')
    const raw = readFileSync(join(fixtures, 'msgbus2007-channel-http11.raw'))
    const expected = (JSON.parse(readFileSync(join(fixtures, 'msgbus2007-channel-http11.json'), 'utf8')) as {
      messages: Array<{type: string; sender: string | null; body_b64: string}>
    }).messages

    /** A server that records each request head, then replays the recording in random slices of 1 to 16 bytes. */
    async function replayServer(): Promise<{url: string; requests: string[]}> {
      const requests: string[] = []
      const random = randomSource(`dump: 2007 replay slices ${servers.size}`)
      const server = createServer((socket: Socket) => {
        socket.setNoDelay(true)
        socket.on('error', () => {})
        let head = ''
        socket.on('data', async (chunk: Buffer) => {
          if (head.includes('\r\n\r\n')) return
          head += chunk.toString('latin1')
          if (!head.includes('\r\n\r\n')) return
          requests.push(head)
          await writeInSlices(socket, raw, random, 16, 1)
        })
      })
      servers.add(server)
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      return {url: `http://127.0.0.1:${(server.address() as {port: number}).port}`, requests}
    }

    it('dump --json reads it, in small random slices, message for message (three runs) @slow', async () => {
      for (let run = 0; run < 3; run++) {
        const replay = await replayServer()
        const result = await runDump(['interop', '--url', replay.url, '--json', '-n', String(expected.length), '--no-reconnect'], {timeoutMs: 8000})
        assert.equal(result.code, 0, result.stderr)
        assert.equal(result.stderr, '')
        const objects = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as {channel: string; type: string; sender: string | null; length: number; body: string; encoding?: string; id: string | null})
        assert.equal(objects.length, expected.length)
        objects.forEach((object, i) => {
          const body = Buffer.from(expected[i].body_b64, 'base64')
          assert.equal(object.channel, 'interop', 'no Content-Location: the channel subscribed to')
          assert.equal(object.type, expected[i].type)
          assert.equal(object.sender, expected[i].sender)
          assert.equal(object.id, null, 'the 2007 msgbus sent no Message-ID')
          assert.equal(object.length, body.length)
          assert.ok(Buffer.from(object.body, object.encoding === 'base64' ? 'base64' : 'utf8').equals(body), `message ${i}`)
          assert.equal(object.encoding, expected[i].type === 'application/octet-stream' ? 'base64' : undefined)
        })
        assert.match(replay.requests[0], /^GET \/msgbus\/interop\?gaps=1 HTTP\/1\.1\r\n/)
      }
    })

    it('dump keeps a 2007 body whole: trailing line ends, leading dashes, an empty and a binary body, byte for byte', async () => {
      // As the 2007 server frames them (the recording's shape): LF header lines, no Content-Length, one message per chunk,
      // the delimiter right after the body.
      const bodies = [Buffer.from('hi\n'), Buffer.from('line1\nline2\n\n'), Buffer.from('ends in crlf\r\n'), Buffer.from('--starts with dashes'), Buffer.alloc(0), Buffer.from([0, 1, 0xff, 0x0a])]
      const chunk = (payload: Buffer): Buffer => Buffer.concat([Buffer.from(`${payload.length.toString(16)}\r\n`), payload, Buffer.from('\r\n')])
      const stream = Buffer.concat([
        Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=00MsgBus00\r\nTransfer-Encoding: chunked\r\n\r\n'),
        chunk(Buffer.from('--00MsgBus00\n')),
        ...bodies.map((body) => chunk(Buffer.concat([Buffer.from('Content-Type: application/octet-stream\n\n'), body, Buffer.from('--00MsgBus00\n')]))),
      ])
      const old = createServer((socket: Socket) => {
        socket.on('error', () => {})
        socket.once('data', () => socket.write(stream))
      })
      servers.add(old)
      await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve))
      const url = `http://127.0.0.1:${(old.address() as {port: number}).port}`
      const result = await runDump(['interop', '--url', url, '--json', '-n', String(bodies.length), '--no-reconnect'], {timeoutMs: 8000})
      assert.equal(result.code, 0, result.stderr)
      const got = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as {body: string; encoding?: string; length: number})
      assert.deepEqual(
        got.map((object) => Buffer.from(object.body, object.encoding === 'base64' ? 'base64' : 'utf8').toString('hex')),
        bodies.map((body) => body.toString('hex')),
      )
    })

    it('the default line format, and -t/-s travel to the server as query parameters @slow', async () => {
      const replay = await replayServer()
      const lines = await runDump(['interop', '--url', replay.url, '-n', '4', '--no-reconnect'])
      assert.equal(lines.code, 0, lines.stderr)
      const rest = lines.stdout.split('\n').slice(0, -1).map((line) => line.slice(line.indexOf(' ') + 1))
      assert.deepEqual(rest, [
        'interop text/plain - 15 hello from 2007',
        'interop text/html - 20 <h1>hello world</h1>',
        `interop application/octet-stream - ${Buffer.from(expected[2].body_b64, 'base64').length} [${Buffer.from(expected[2].body_b64, 'base64').length} bytes of application/octet-stream]`,
        'interop text/plain alice 10 from alice',
      ])

      const filtered = await runDump(['interop', '--url', replay.url, '-t', 'text/*,!text/html', '-s', 'alice,b*', '-n', '1', '--no-reconnect'])
      assert.equal(filtered.code, 0, filtered.stderr)
      const requestLine = replay.requests[1].split('\r\n')[0]
      const target = new URL(requestLine.split(' ')[1], 'http://x')
      assert.equal(target.pathname, '/msgbus/interop')
      assert.equal(target.searchParams.get('type'), 'text/*,!text/html')
      assert.equal(target.searchParams.get('sender'), 'alice,b*')
    })
  })
})
