// `msgbus send`, the built CLI in its own process, against a real server; what
// it published is checked by a `curl -N` subscriber, an independent reader.
import assert from 'node:assert/strict'
import {readFileSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import type {BusServer} from '../src/lib/index.js'
import {BIN, freePort, msgbus, MsgbusProcess, publish, run, ServeProcess, sleep, startBus, stopAll, type RunResult, tempFolder, until} from './support/harness.js'
import {randomSource} from './support/random.js'
import {closeSilentProxies, silentProxy} from './support/silent-proxy.js'
import {makeCertificate} from './support/tls.js'
import {CurlStream} from './support/curl-stream.js'

const B = 'sendboundary'
const TEXT = 'text/plain; charset=utf-8'


const serves = new Set<ServeProcess>()

/** Exit status 1 and exactly one line on stderr, `msgbus send: ...`, nothing on stdout. */
function assertFailure(result: RunResult, reason: RegExp, code = 1): void {
  assert.equal(result.code, code, `exit status; stderr: ${result.stderr}`)
  assert.equal(result.stdout, '')
  assert.match(result.stderr, /^msgbus send: [^\n]+\n$/, `one line: ${JSON.stringify(result.stderr)}`)
  assert.match(result.stderr, reason)
}

/** Waits a little and checks that nothing arrived: for "nothing was sent". */
async function assertNothingArrives(subscriber: CurlStream, server: BusServer, channel: string): Promise<void> {
  // A marker published after the failure arrives; had anything been sent before it, it would come first.
  await publish(server, channel, 'marker')
  await subscriber.waitParts(1)
  assert.deepEqual(subscriber.bodies(), ['marker'])
}


describe('msgbus send', function () {
  this.timeout(15000)

  const inTemp = tempFolder('msgbus-send-')

  afterEach(async () => {
    CurlStream.killAll()
    MsgbusProcess.killAll()
    // ServeProcess.stop() waits for an exit that already happened when a signal ended it: skip those.
    await Promise.all([...serves].filter((serve) => serve.child.exitCode === null && serve.child.signalCode === null).map((serve) => serve.stop('SIGKILL')))
    serves.clear()
    await stopAll()
  })

  describe('stdin and files', () => {
    it('`echo hi | msgbus send foo --url URL` in a shell: a curl subscriber gets "hi\\n" as text/plain; charset=utf-8', async () => {
      const server = await startBus({boundary: B})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/foo`)
      const result = await run('sh', ['-c', `echo hi | "${process.execPath}" "${BIN}" send foo --url ${server.url()}`])
      assert.equal(result.code, 0, result.stderr)
      assert.equal(result.stdout, '', 'quiet on success without -v')
      assert.equal(result.stderr, '')
      const [part] = await subscriber.waitParts(1)
      assert.equal(part.body.toString(), 'hi\n')
      assert.equal(part.headers['content-type'], TEXT)
      assert.equal(part.headers['content-location'], '/msgbus/foo')
      assert.equal(part.headers.from, undefined, 'no credentials, no sender')
    })

    it('an empty stdin sends one empty message', async () => {
      const server = await startBus({boundary: B})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/empty`)
      const result = await msgbus(['send', 'empty', '--url', server.url()], {input: ''})
      assert.equal(result.code, 0, result.stderr)
      const [part] = await subscriber.waitParts(1)
      assert.equal(part.headers['content-length'], '0')
      assert.equal(part.headers['content-type'], TEXT)
      assert.equal(part.body.length, 0)
    })

    it('a FILE\'s type comes from its extension (.html, .png, .json); -t overrides it @slow', async () => {
      const server = await startBus({boundary: B})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/files`)
      const files = {
        'page.html': Buffer.from('<h1>hello</h1>\n'),
        'pixel.png': Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'),
        'data.json': Buffer.from('{"a":[1,2]}'),
      }
      for (const [name, bytes] of Object.entries(files)) writeFileSync(inTemp(name), bytes)
      for (const name of Object.keys(files)) {
        const result = await msgbus(['send', 'files', inTemp(name), '--url', server.url()])
        assert.equal(result.code, 0, result.stderr)
      }

      const overridden = await msgbus(['send', 'files', inTemp('data.json'), '-t', 'application/vnd.example+json', '--url', server.url()])
      assert.equal(overridden.code, 0, overridden.stderr)
      const stdinTyped = await msgbus(['send', 'files', '--type', 'text/csv', '--url', server.url()], {input: 'a,b\n'})
      assert.equal(stdinTyped.code, 0, stdinTyped.stderr)
      const parts = await subscriber.waitParts(5)
      assert.deepEqual(
        parts.map((part) => part.headers['content-type']),
        // A file's name goes with it, as its type's name parameter.
        ['text/html; name="page.html"', 'image/png; name="pixel.png"', 'application/json; name="data.json"', 'application/vnd.example+json; name="data.json"', 'text/csv'],
      )
      assert.deepEqual(parts.slice(0, 3).map((part) => part.body), Object.values(files))
      assert.equal(parts[4].body.toString(), 'a,b\n')
    })

    it('several FILEs: n messages, in order, in one request (all or none); -v prints id=... subscribers=N for each @slow', async () => {
      const server = await startBus({boundary: B, maxMessageSize: 1000})
      const url = `${server.url()}/msgbus/many`
      const first = await CurlStream.open(url)
      const second = await CurlStream.open(url)
      const names = ['one.txt', 'two.html', 'three.json']
      names.forEach((name, i) => writeFileSync(inTemp(name), `body ${i + 1}`))
      const result = await msgbus(['send', 'many', ...names.map((name) => inTemp(name)), '--url', server.url(), '-v'])
      assert.equal(result.code, 0, result.stderr)
      assert.equal(result.stderr, '')
      const parts = await first.waitParts(3)
      assert.deepEqual(first.bodies(), ['body 1', 'body 2', 'body 3'])
      assert.deepEqual(parts.map((part) => part.headers['content-type']), ['text/plain; name="one.txt"', 'text/html; name="two.html"', 'application/json; name="three.json"'])
      await second.waitParts(3)
      assert.deepEqual(second.bodies(), ['body 1', 'body 2', 'body 3'])
      const lines = result.stdout.split('\n')
      assert.equal(lines.pop(), '', 'ends with a newline')
      assert.deepEqual(lines, parts.map((part) => `id=${part.headers['message-id']} subscribers=2`))

      // One request: a part over the limit refuses the whole form, so none of the files is published.
      writeFileSync(inTemp('big.bin'), Buffer.alloc(2000, 7))
      const refused = await msgbus(['send', 'many', inTemp('one.txt'), inTemp('big.bin'), '--url', server.url()])
      // The server answers 413 and closes as soon as the part passes the limit, while the client is still
      // writing the form: the close can reset the connection before the client reads the 413 (a race).
      assertFailure(refused, /many: (413 form part larger than the limit of 1000 bytes|connection closed by the server|connection reset by the server)\n$/)
      await publish(server, 'many', 'marker')
      await first.waitParts(4)
      assert.deepEqual(first.bodies().slice(3), ['marker'])
    })

    it('-v on a single message; -q prints nothing, on success or on error @slow', async () => {
      const server = await startBus({boundary: B})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/v`)
      const verbose = await msgbus(['send', 'v', '--url', server.url(), '-v'], {input: 'x'})
      assert.equal(verbose.code, 0, verbose.stderr)
      const [part] = await subscriber.waitParts(1)
      assert.equal(verbose.stdout, `id=${part.headers['message-id']} subscribers=1\n`)

      const quiet = await msgbus(['send', 'v', '--url', server.url(), '-q'], {input: 'y'})
      assert.deepEqual([quiet.code, quiet.stdout, quiet.stderr], [0, '', ''])
      await subscriber.waitParts(2)
      const refused = await msgbus(['send', 'v', '--url', `http://127.0.0.1:${await freePort()}`, '-q'], {input: 'z'})
      assert.equal(refused.code, 1)
      assert.equal(refused.stdout, '')
      assert.equal(refused.stderr, '', 'not even the error')
      const missing = await msgbus(['send', 'v', inTemp('no-such-file'), '--url', server.url(), '-q'])
      assert.deepEqual([missing.code, missing.stdout, missing.stderr], [1, '', ''])
    })

    it('a missing FILE fails before anything is sent: one line naming it, non-zero exit @slow', async () => {
      const server = await startBus({boundary: B})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/miss`)
      writeFileSync(inTemp('present.txt'), 'present')
      const missing = inTemp('absent.txt')
      const result = await msgbus(['send', 'miss', inTemp('present.txt'), missing, '--url', server.url()])
      assertFailure(result, new RegExp(`cannot read ${missing.replace(/[.]/g, '\\.')}: no such file`))
      const alone = await msgbus(['send', 'miss', missing, '--url', server.url()])
      assertFailure(alone, /absent\.txt/)
      await assertNothingArrives(subscriber, server, 'miss')
    })

    it('-m TEXT sends the text as it is (repeated: one message each, in one request); a missing FILE that looks like words points to -m @slow', async () => {
      const server = await startBus({boundary: B})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/text`)
      const one = await msgbus(['send', 'text', '-m', 'hello', '--url', server.url()])
      assert.deepEqual([one.code, one.stdout, one.stderr], [0, '', ''])
      const two = await msgbus(['send', 'text', '-m', 'wörld', '-m', 'two words', '--url', server.url(), '-v'])
      assert.equal(two.code, 0, two.stderr)
      const parts = await subscriber.waitParts(3)
      assert.deepEqual(subscriber.bodies(), ['hello', 'wörld', 'two words'])
      assert.deepEqual(parts.map((part) => part.headers['content-type']), [TEXT, TEXT, TEXT])
      assert.equal(two.stdout.split('\n').length, 3, 'an id for each')

      assertFailure(await msgbus(['send', 'text', 'hello', '--url', server.url()]), /^msgbus send: no such file hello \(to send the text hello, use -m hello\)\n$/)
      assertFailure(await msgbus(['send', 'text', 'hello world', '--url', server.url()]), /no such file 'hello world' \(to send the text 'hello world', use -m 'hello world'\)/)
      assertFailure(await msgbus(['send', 'text', '-m', 'x', inTemp('a.txt'), '--url', server.url()]), /-m sends its text: give no FILE and no --lines/, 2)
      await publish(server, 'text', 'marker')
      await subscriber.waitParts(4)
      assert.deepEqual(subscriber.bodies().slice(3), ['marker'], 'nothing sent by the failures')
    })

    it('--retry-for: a single message waits for a server that is not there yet @slow', async () => {
      const port = await freePort()
      const sender = new MsgbusProcess(['send', 'later', '-m', 'patience', '--retry-for', '1m', '--url', `http://127.0.0.1:${port}`, '-v'])
      await sender.until(() => /connection refused: attempt 2 in /.test(sender.stderr), 'a retry')
      await startBus({port})
      const result = await sender.exit(20000)
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stdout, /^id=\d+-\d+ subscribers=0\n$/)
    })
  })

  describe('targets and credentials', () => {
    it('a full URL target; MSGBUS_URL as the base; --url overrides MSGBUS_URL; a full URL overrides both @slow', async () => {
      const server = await startBus({boundary: B})
      const dead = `http://127.0.0.1:${await freePort()}`
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/`)
      const full = await msgbus(['send', `${server.url()}/msgbus/full/url`], {input: 'full'})
      assert.equal(full.code, 0, full.stderr)
      const env = await msgbus(['send', 'from/env'], {input: 'env', env: {MSGBUS_URL: server.url()}})
      assert.equal(env.code, 0, env.stderr)
      const flag = await msgbus(['send', 'from-flag', '--url', server.url()], {input: 'flag', env: {MSGBUS_URL: dead}})
      assert.equal(flag.code, 0, flag.stderr)
      const both = await msgbus(['send', `${server.url()}/msgbus/over`, '--url', dead], {input: 'over', env: {MSGBUS_URL: dead}})
      assert.equal(both.code, 0, both.stderr)
      const parts = await subscriber.waitParts(4)
      assert.deepEqual(subscriber.bodies(), ['full', 'env', 'flag', 'over'])
      assert.deepEqual(parts.map((part) => part.headers['content-location']), ['/msgbus/full/url', '/msgbus/from/env', '/msgbus/from-flag', '/msgbus/over'])
      // And the base really is read from MSGBUS_URL: pointing it at a closed port fails there.
      const refused = await msgbus(['send', 'x'], {input: 'x', env: {MSGBUS_URL: dead}})
      assertFailure(refused, new RegExp(`^msgbus send: ${dead}/msgbus/x: connection refused\\n$`))
    })

    it('Basic auth: -u user:pass and a URL\'s user:pass@ become From:, also against a --secret server @slow', async () => {
      const server = await startBus({boundary: B, secret: 's3cret'})
      const base = server.url()
      const subscriber = await CurlStream.open(`${base}/msgbus/auth`, ['-u', 'watcher:s3cret'])
      const withFlag = await msgbus(['send', 'auth', '--url', base, '-u', 'alice:s3cret'], {input: 'a'})
      assert.equal(withFlag.code, 0, withFlag.stderr)
      const inBase = await msgbus(['send', 'auth', '--url', base.replace('://', '://bob:s3cret@')], {input: 'b'})
      assert.equal(inBase.code, 0, inBase.stderr)
      const inTarget = await msgbus(['send', `${base.replace('://', '://carol:s3cret@')}/msgbus/auth`], {input: 'c'})
      assert.equal(inTarget.code, 0, inTarget.stderr)
      const overridden = await msgbus(['send', `${base.replace('://', '://carol:wrong@')}/msgbus/auth`, '-u', 'dave:s3cret'], {input: 'd'})
      assert.equal(overridden.code, 0, overridden.stderr)
      const parts = await subscriber.waitParts(4)
      assert.deepEqual(parts.map((part) => part.headers.from), ['alice', 'bob', 'carol', 'dave'])
      assert.deepEqual(subscriber.bodies(), ['a', 'b', 'c', 'd'])
    })
    it('MSGBUS_USER (user:pass, or user with MSGBUS_PASSWORD) for send and dump; -u and a URL\'s user:pass@ beat it; no terminal, no prompt @slow', async () => {
      const server = await startBus({boundary: B, secret: 's3cret'})
      const base = server.url()
      const subscriber = await CurlStream.open(`${base}/msgbus/env`, ['-u', 'watcher:s3cret'])
      // dump, another client command, takes its credentials from the environment as well.
      const dump = new MsgbusProcess(['dump', 'env', '-n', '1', '--raw', '-v', '--url', base], {MSGBUS_USER: 'reader:s3cret'})
      await dump.until(() => /subscribed to/.test(dump.stderr), 'dump to subscribe')
      const sends: Array<[string[], NodeJS.ProcessEnv]> = [
        [['-m', 'a'], {MSGBUS_USER: 'alice:s3cret'}],
        [['-m', 'b'], {MSGBUS_USER: 'bob', MSGBUS_PASSWORD: 's3cret'}],
        [['-m', 'c', '-u', 'carol:s3cret'], {MSGBUS_USER: 'mallory:wrong'}],
        [['-m', 'd', '-u', 'dave'], {MSGBUS_USER: 'mallory:wrong', MSGBUS_PASSWORD: 's3cret'}],
      ]
      for (const [args, env] of sends) {
        const result = await msgbus(['send', 'env', '--url', base, ...args], {env})
        assert.equal(result.code, 0, `${JSON.stringify(env)}: ${result.stderr}`)
      }

      const inUrl = await msgbus(['send', `${base.replace('://', '://erin:s3cret@')}/msgbus/env`, '-m', 'e'], {env: {MSGBUS_USER: 'mallory:wrong'}})
      assert.equal(inUrl.code, 0, inUrl.stderr)
      const parts = await subscriber.waitParts(5)
      assert.deepEqual(parts.map((part) => part.headers.from), ['alice', 'bob', 'carol', 'dave', 'erin'])
      assert.deepEqual((await dump.exit()).stdout, 'a\n')
      // stdin and stderr are pipes here, no one to ask: the request goes without a password, and the server says what it wants.
      const noPassword = await msgbus(['send', 'env', '--url', base, '-u', 'frank', '-m', 'f'])
      assertFailure(noPassword, /\/msgbus\/env: 401 /)
    })

    it('-u user on a terminal asks for the password on it, without echo (under script(1), a pty) @slow', async function () {
      if ((await run('sh', ['-c', 'command -v script'])).code !== 0) this.skip()
      const server = await startBus({boundary: B, secret: 's3cret'})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/tty`, ['-u', 'watcher:s3cret'])
      const quote = (word: string): string => `'${word.replaceAll("'", `'\\''`)}'`
      const command = [process.execPath, BIN, 'send', 'tty', '-u', 'grace', '--url', server.url(), '-m', 'typed'].map(quote).join(' ')
      const {spawn} = await import('node:child_process')
      const child = spawn('script', ['-qec', command, '/dev/null'], {stdio: ['pipe', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1'}})
      let output = ''
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
      try {
        await until(() => output.includes('Password for grace: '), () => `the prompt; got ${JSON.stringify(output)}`, 15000)
        child.stdin.write('s3cret\r')
        assert.equal(await exited, 0, output)
      } finally {
        child.kill('SIGKILL')
      }

      assert.doesNotMatch(output, /s3cret/, 'not echoed')
      const [part] = await subscriber.waitParts(1)
      assert.equal(part.headers.from, 'grace')
      assert.equal(part.body.toString(), 'typed')
    })
  })

  describe('--lines', () => {
    it('10,000 lines arrive complete and in order, to a `msgbus serve` process (the rate is printed) @slow', async function () {
      this.timeout(60000)
      // The server in its own process, as in use: the rate is then the client's, not this test process's.
      const serve = await ServeProcess.start(['-p', '0', '-l', '127.0.0.1'])
      serves.add(serve)
      const server = {url: () => `http://127.0.0.1:${serve.port()}`}
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/lines`)
      const count = 10000
      const lines = Array.from({length: count}, (_, i) => `line ${i} ${'x'.repeat(i % 50)}`)
      const baseline = Date.now()
      const empty = await msgbus(['send', 'lines', '--lines', '--url', server.url()], {input: ''})
      const startup = Date.now() - baseline
      assert.equal(empty.code, 0, empty.stderr)
      const input = `${lines.join('\n')}\n`
      const rates: string[] = []
      // Twice: a fresh server, then the same one warmed up; both runs must arrive whole and in order.
      for (const round of [1, 2]) {
        const started = Date.now()
        const result = await msgbus(['send', 'lines', '--lines', '--url', server.url()], {input, timeoutMs: 55000})
        const wall = Date.now() - started
        assert.equal(result.code, 0, result.stderr)
        assert.deepEqual([result.stdout, result.stderr], ['', ''])
        const parts = await subscriber.waitParts(round * count, 20000)
        assert.equal(parts.length, round * count, 'no extra messages (an empty stdin sends none with --lines)')
        assert.deepEqual(parts.slice((round - 1) * count).map((part) => part.body.toString()), lines)
        assert.ok(parts.every((part) => part.headers['content-type'] === TEXT))
        const sending = Math.max(1, wall - startup)
        rates.push(
          `${round === 1 ? 'fresh' : 'warm'} server: ${wall} ms wall, ${Math.round(count / (wall / 1000))} lines/s with start-up, ` +
            `~${Math.round(count / (sending / 1000))} lines/s less the ~${startup} ms start-up`,
        )
      }

      console.log(`      send --lines, ${count} lines: ${rates.join('; ')}`)
    })

    it('each line is sent as it arrives: a line, then a pause, is published before stdin ends; CRLF and a last line without newline @slow', async () => {
      const server = await startBus({boundary: B})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/live`)
      const send = new MsgbusProcess(['send', 'live', '--lines', '--url', server.url(), '-v'], {}, {stdin: true})
      const stdin = send.child.stdin!
      stdin.write('first line\n')
      await subscriber.waitParts(1)
      assert.ok(send.running, 'still running: stdin is open')
      assert.deepEqual(subscriber.bodies(), ['first line'])
      // A pause, as a tail -f or a person typing makes: the next lines are sent when they come.
      await sleep(300)
      stdin.write('second\r\nthird, no newline')
      await subscriber.waitParts(2)
      stdin.end()
      const {code, stdout, stderr} = await send.exit()
      assert.equal(code, 0, stderr)
      await subscriber.waitParts(3)
      assert.deepEqual(subscriber.bodies(), ['first line', 'second', 'third, no newline'])
      assert.deepEqual(stdout.trim().split('\n'), subscriber.parts().map((part) => `id=${part.headers['message-id']} subscribers=1`))
    })

    it('pipelined: the requests go out without waiting for answers (a server that answers only once it has all three)', async () => {
      const requests: string[] = []
      const server = createServer((socket) => {
        let text = ''
        socket.on('error', () => {})
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1')
          const count = text.split('POST /msgbus/piped HTTP/1.1\r\n').length - 1
          if (count < 3 || !text.endsWith('three')) return
          requests.push(text)
          socket.write([1, 2, 3].map((n) => `HTTP/1.1 204 No Content\r\nMsgbus-Id: 1-${n}\r\nMsgbus-Subscribers: ${n}\r\n\r\n`).join(''))
        })
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      try {
        const url = `http://127.0.0.1:${(server.address() as {port: number}).port}`
        const result = await msgbus(['send', 'piped', '--lines', '-v', '--url', url], {input: 'one\ntwo\nthree', timeoutMs: 5000})
        assert.equal(result.code, 0, `stuck waiting for the first answer? ${result.stderr}`)
        assert.equal(result.stdout, 'id=1-1 subscribers=1\nid=1-2 subscribers=2\nid=1-3 subscribers=3\n')
        assert.equal(requests.length, 1, 'one connection')
      } finally {
        server.close()
      }
    })

    it('--lines with a FILE is a usage error (exit 2), nothing sent', async () => {
      const server = await startBus({boundary: B})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/lf`)
      writeFileSync(inTemp('lines.txt'), 'a\nb\n')
      const result = await msgbus(['send', 'lf', inTemp('lines.txt'), '--lines', '--url', server.url()], {input: 'c\n'})
      assertFailure(result, /^msgbus send: --lines reads stdin: give no FILE/, 2)
      await assertNothingArrives(subscriber, server, 'lf')
    })

    it('a line refused for itself (413) is lost and said so, the others go on; the report counts it; exit 1', async () => {
      const server = await startBus({boundary: B, maxMessageSize: 10})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/long`)
      const sender = new MsgbusProcess(['send', 'long', '--lines', '--url', server.url(), '-v'], {}, {stdin: true})
      // "short" answered before the long line goes: the server writes its 413 straight to the socket, ahead of
      // an answer still pending for an earlier pipelined request (a server bug), which would then take the 413.
      sender.child.stdin!.write('short\n')
      await sender.untilLines(1)
      sender.child.stdin!.end('this line is far too long\nok\n')
      const result = await sender.exit()
      assert.equal(result.code, 1, result.stderr)
      assert.match(result.stdout, /^(id=\S+ subscribers=1\n){2,3}$/)
      const [refused, report, ...rest] = result.stderr.split('\n')
      assert.equal(refused, `msgbus send: line 2 refused, lost: ${server.url()}/msgbus/long: 413 message larger than the limit of 10 bytes`)
      // The server closes the connection after a 413: "ok", pipelined behind, is sent again (and may come twice).
      const retried = Number(/^msgbus send: 2 lines sent, ([01]) retried, 1 lost$/.exec(report)?.[1] ?? Number.NaN)
      assert.ok(retried >= 0, result.stderr)
      assert.deepEqual(rest, [''])
      await publish(server, 'long', 'marker')
      await subscriber.until(() => subscriber.bodies().includes('marker'), 'the marker')
      const bodies = subscriber.bodies().slice(0, subscriber.bodies().indexOf('marker'))
      assert.deepEqual([...new Set(bodies)], ['short', 'ok'])
      assert.ok(bodies.length - 2 <= retried, `${bodies.join(',')}: repeats beyond the ${retried} retried`)
    })

    it('-q: a lost line is only the exit status', async () => {
      const server = await startBus({boundary: B, maxMessageSize: 10})
      const result = await msgbus(['send', 'long', '--lines', '-q', '--url', server.url()], {input: 'this line is far too long\n'})
      assert.deepEqual([result.code, result.stdout, result.stderr], [1, '', ''])
    })
  })

  describe('against a 2007 msgbus, which answers a publish with a bare 204', () => {
    /**
     * Stands in for the 2007 server's publish answer (msgbus.c:
     * `evhttp_send_reply(req, HTTP_NOCONTENT, "OK", NULL)`): `204 OK`, no
     * Msgbus-Id or Msgbus-Subscribers; or another bare 2xx. Keeps each request's body.
     */
    async function server2007(status = 204): Promise<{url: string; bodies: string[]; close(): Promise<void>}> {
      const {createServer: createHttpServer} = await import('node:http')
      const bodies: string[] = []
      const server = createHttpServer((req, res) => {
        const chunks: Buffer[] = []
        req.on('data', (chunk: Buffer) => chunks.push(chunk))
        req.on('end', () => {
          bodies.push(Buffer.concat(chunks).toString('latin1'))
          res.writeHead(status, 'OK', {Server: 'msgbus'})
          res.end()
        })
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const url = `http://127.0.0.1:${(server.address() as {port: number}).port}`
      return {url, bodies, close: () => new Promise((resolve) => server.close(() => resolve()))}
    }

    it('stdin, a file, several files (a form) and --lines: exit 0, quiet; -v says the server gave no id @slow', async () => {
      const old = await server2007()
      try {
        const quiet = await msgbus(['send', 'foo', '--url', old.url], {input: 'hello 2007'})
        assert.deepEqual([quiet.code, quiet.stdout, quiet.stderr], [0, '', ''])
        const verbose = await msgbus(['send', 'foo', '--url', old.url, '-v'], {input: 'again'})
        assert.deepEqual([verbose.code, verbose.stdout, verbose.stderr], [0, 'published (the server gave no id)\n', ''])
        writeFileSync(inTemp('a.txt'), 'file a')
        writeFileSync(inTemp('b.txt'), 'file b')
        const one = await msgbus(['send', 'foo', inTemp('a.txt'), '--url', old.url])
        assert.deepEqual([one.code, one.stderr], [0, ''])
        const form = await msgbus(['send', 'foo', inTemp('a.txt'), inTemp('b.txt'), '--url', old.url, '-v'])
        assert.deepEqual([form.code, form.stdout, form.stderr], [0, 'published (the server gave no id)\n'.repeat(2), ''])
        const lines = await msgbus(['send', 'foo', '--lines', '--url', old.url, '-v'], {input: 'one\ntwo\nthree\n'})
        // -v ends --lines with the report.
        assert.deepEqual([lines.code, lines.stdout, lines.stderr], [0, 'published (the server gave no id)\n'.repeat(3), 'msgbus send: 3 lines sent, 0 retried, 0 lost\n'])
        assert.deepEqual(old.bodies.slice(0, 3), ['hello 2007', 'again', 'file a'])
        assert.match(old.bodies[3], /file a[\s\S]*file b/, 'the form')
        assert.deepEqual(old.bodies.slice(4), ['one', 'two', 'three'])
      } finally {
        await old.close()
      }

      const other = await server2007(200)
      try {
        const result = await msgbus(['send', 'foo', '--url', other.url, '-v'], {input: 'a bare 200'})
        assert.deepEqual([result.code, result.stdout, result.stderr, other.bodies], [0, 'published (the server gave no id)\n', '', ['a bare 200']])
      } finally {
        await other.close()
      }
    })
  })

  describe('binary bodies, byte for byte', () => {
    const all256 = Buffer.from(Array.from({length: 256}, (_, i) => i))
    const random = randomSource('send: 5 MiB').bytes(5 * 1024 * 1024)

    for (const [name, bytes] of [['all 256 byte values', all256], ['5 MiB of random bytes', random]] as const) {
      it(`${name}, via a FILE and via stdin @slow`, async () => {
        const server = await startBus({boundary: B})
        const subscriber = await CurlStream.open(`${server.url()}/msgbus/bin`)
        const file = inTemp('blob.bin')
        writeFileSync(file, bytes)
        const viaFile = await msgbus(['send', 'bin', file, '--url', server.url()])
        assert.equal(viaFile.code, 0, viaFile.stderr)
        const viaStdin = await msgbus(['send', 'bin', '-t', 'application/octet-stream', '--url', server.url()], {input: bytes})
        assert.equal(viaStdin.code, 0, viaStdin.stderr)
        const parts = await subscriber.waitParts(2, 10000)
        assert.deepEqual(parts.map((part) => part.headers['content-type']), ['application/octet-stream; name="blob.bin"', 'application/octet-stream'])
        for (const part of parts) {
          assert.equal(part.body.length, bytes.length)
          assert.ok(part.body.equals(bytes), 'the same bytes')
        }
      })
    }
  })

  describe('HTTPS', () => {
    let certFile: string
    let keyFile: string

    before(async () => {
      ;({certFile, keyFile} = await makeCertificate(inTemp()))
    })

    it('an untrusted certificate fails with one line naming the URL and the TLS reason; --cacert and -k work @slow', async () => {
      const server = await startBus({boundary: B, cert: readFileSync(certFile), key: readFileSync(keyFile)})
      const url = `${server.url('https')}/msgbus/tls`
      const subscriber = await CurlStream.open(url, ['--cacert', certFile])
      const untrusted = await msgbus(['send', url], {input: 'no'})
      assertFailure(untrusted, new RegExp(`^msgbus send: ${url}: TLS: .*(self-signed|certificate)`))
      const base = await msgbus(['send', 'tls', '--url', server.url('https')], {input: 'no'})
      assertFailure(base, /TLS/)
      // --lines, which retries what can heal, does not retry this: one line, the report, exit 1.
      const lines = await msgbus(['send', 'tls', '--lines', '--url', server.url('https')], {input: 'no\n'})
      assert.equal(lines.code, 1, lines.stderr)
      assert.match(lines.stderr, /^msgbus send: https:\/\/[^\n]+: TLS: [^\n]+\nmsgbus send: 0 lines sent, 0 retried, 1 lost\n$/)
      const trusted = await msgbus(['send', url, '--cacert', certFile], {input: 'with --cacert'})
      assert.equal(trusted.code, 0, trusted.stderr)
      const insecure = await msgbus(['send', 'tls', '--url', server.url('https'), '-k', '-u', 'eve:pw'], {input: 'with -k'})
      assert.equal(insecure.code, 0, insecure.stderr)
      const parts = await subscriber.waitParts(2)
      assert.deepEqual(subscriber.bodies(), ['with --cacert', 'with -k'])
      assert.equal(parts[1].headers.from, 'eve')
      const noCa = await msgbus(['send', url, '--cacert', inTemp('missing.pem')], {input: 'x'})
      assertFailure(noCa, /missing\.pem/)
    })
  })

  describe('errors: one line naming the URL and the reason, non-zero exit', () => {
    it('connection refused @slow', async () => {
      const port = await freePort()
      const result = await msgbus(['send', 'x', '--url', `http://127.0.0.1:${port}`], {input: 'x'})
      assertFailure(result, new RegExp(`^msgbus send: http://127\\.0\\.0\\.1:${port}/msgbus/x: connection refused\\n$`))
    })

    it('HTTP errors: 413 over maxMessageSize, 401 without the secret (status and the server\'s reason) @slow', async () => {
      const small = await startBus({boundary: B, maxMessageSize: 16})
      const tooBig = await msgbus(['send', 'big', '--url', small.url()], {input: 'x'.repeat(100)})
      assertFailure(tooBig, new RegExp(`^msgbus send: ${small.url()}/msgbus/big: 413 message larger than the limit of 16 bytes\\n$`))
      const guarded = await startBus({boundary: B, secret: 'pw'})
      const anonymous = await msgbus(['send', 'sec', '--url', guarded.url()], {input: 'x'})
      assertFailure(anonymous, new RegExp(`^msgbus send: ${guarded.url()}/msgbus/sec: 401 authentication required\\n$`))
      const wrong = await msgbus(['send', 'sec', '--url', guarded.url(), '-u', 'mallory:guess'], {input: 'x'})
      assertFailure(wrong, / 401 /)
    })

    it('a publish left unanswered (a connection accepted and never answered): one line naming the URL and the default 30 s, exit 1 @slow', async function () {
      this.timeout(60_000)
      const proxy = await silentProxy(0, () => true)
      try {
        const result = await msgbus(['send', 'x', '--url', proxy.url], {input: 'x', timeoutMs: 50_000})
        assertFailure(result, new RegExp(`^msgbus send: ${proxy.url}/msgbus/x: no answer within 30 s \\(the message may have been published\\)\\n$`))
      } finally {
        closeSilentProxies()
      }
    })

    it('a bad URL @slow', async () => {
      const result = await msgbus(['send', 'x', '--url', 'notaurl'], {input: 'x'})
      assertFailure(result, /^msgbus send: not a URL: "notaurl" \(--url\)\n$/)
      const env = await msgbus(['send', 'x'], {input: 'x', env: {MSGBUS_URL: 'ftp://example.invalid'}})
      assertFailure(env, /not an http or https URL: "ftp:\/\/example\.invalid" \(MSGBUS_URL\)/)
    })

    it('a DNS failure @slow', async () => {
      const url = 'http://no-such-host.invalid/msgbus/x'
      const result = await msgbus(['send', url], {input: 'x'})
      assertFailure(result, new RegExp(`^msgbus send: ${url.replace(/\./g, '\\.')}: (host not found|host name lookup failed)`))
    })

    it('publishing to / (every channel) is refused before sending @slow', async () => {
      const server = await startBus({boundary: B})
      const subscriber = await CurlStream.open(`${server.url()}/msgbus/`)
      for (const target of ['/', `${server.url()}/msgbus/`]) {
        const result = await msgbus(['send', target, '--url', server.url()], {input: 'everyone'})
        assertFailure(result, new RegExp(`^msgbus send: ${server.url()}/msgbus/: name a channel to publish to\\n$`))
      }

      const lines = await msgbus(['send', '/', '--lines', '--url', server.url()], {input: 'a\n'})
      assertFailure(lines, /name a channel to publish to/)
      assert.equal(server.counters().published, 0, 'nothing published')
      await assertNothingArrives(subscriber, server, 'after')
    })
  })
})
