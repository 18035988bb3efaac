// `msgbus serve` as a process: flags, logs, errors and signals.
import assert from 'node:assert/strict'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {msgbus, RawClient, ServeProcess, curl, request, run} from './support/harness.js'

const serve = (args: string[], env: NodeJS.ProcessEnv = {}) => msgbus(['serve', ...args], {env, timeoutMs: 10000})

describe('msgbus serve', function () {
  this.timeout(20000)
  const started: ServeProcess[] = []
  afterEach(async () => {
    await Promise.all(started.splice(0).map((s) => s.stop('SIGKILL')))
  })

  async function start(args: string[]): Promise<ServeProcess> {
    const process = await ServeProcess.start(['--port', '0', '--address', '127.0.0.1', ...args])
    started.push(process)
    return process
  }

  it('logs where it listens, then serves', async () => {
    const server = await start([])
    assert.match(server.stderr, /^\S+ listen HTTP on 127\.0\.0\.1:\d+\n/)
    const reply = await request(`http://127.0.0.1:${server.port()}/msgbus/x`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: 'hi'})
    assert.equal(reply.status, 204)
  })

  it('a log that can no longer be written (its pipe closed, as by `| head`) does not stop it serving', async () => {
    const server = await start(['-vvv'])
    const port = server.port()
    server.child.stderr!.destroy()
    const sub = await RawClient.open(port, 'GET /msgbus/after HTTP/1.1\r\nHost: x\r\n\r\n')
    await sub.until((t) => t.includes('\r\n\r\n'))
    // Each publish is a log line (-vvv) into the closed pipe: EPIPE.
    for (const body of ['one', 'two']) {
      const reply = await request(`http://127.0.0.1:${port}/msgbus/after`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body})
      assert.equal(reply.status, 204)
    }
    await sub.until((t) => t.includes('two'))
    sub.close()
    assert.equal(server.child.exitCode, null, 'still running')
  })

  it('-vvv logs subscriptions and publishes, one line each, without colour when piped', async () => {
    const server = await start(['-vvv'])
    const sub = await RawClient.open(server.port(), 'GET /msgbus/news?type=text/* HTTP/1.1\r\nHost: x\r\n\r\n')
    await sub.until((t) => t.includes('\r\n\r\n'))
    await curl(['-u', 'bob:pw', '-H', 'Content-Type: text/plain', '-d', 'hello', `http://127.0.0.1:${server.port()}/msgbus/news`])
    sub.close()
    await server.logged(/unsubscribe/)
    assert.match(server.stderr, /subscribe 127\.0\.0\.1:\d+ news type=text\/\*\n/)
    assert.match(server.stderr, /publish 127\.0\.0\.1:\d+ news text\/plain 5 bytes id=\d+-\d+ from=bob to 1\n/)
    assert.match(server.stderr, /unsubscribe 127\.0\.0\.1:\d+ news type=text\/\* after 1 message, \d+(\.\d)? s\n/)
    assert.ok(!server.stderr.includes('\u001b['), 'no escape codes')
  })

  it('-v 1 logs subscriptions but not publishes; the default logs neither @slow', async () => {
    for (const [args, subscriptions] of [[['-v', '1'], true], [[], false]] as const) {
      const server = await start([...args])
      const sub = await RawClient.open(server.port(), 'GET /msgbus/q HTTP/1.1\r\nHost: x\r\n\r\n')
      await sub.until((t) => t.includes('\r\n\r\n'))
      await curl(['-H', 'Content-Type: text/plain', '-d', 'x', `http://127.0.0.1:${server.port()}/msgbus/q`])
      assert.equal(/ subscribe /.test(server.stderr), subscriptions)
      assert.ok(!/publish/.test(server.stderr))
      sub.close()
    }
  })

  it('SIGINT stops it with exit 0 @slow', async () => {
    const server = await start([])
    const {code} = await server.stop('SIGINT')
    assert.equal(code, 0)
  })

  it('a busy port: one clear line, non-zero exit', async () => {
    const blocker = createServer().listen(0, '127.0.0.1')
    await new Promise((r) => blocker.once('listening', r))
    const port = (blocker.address() as {port: number}).port
    const result = await serve(['--port', String(port), '--address', '127.0.0.1'])
    blocker.close()
    assert.notEqual(result.code, 0)
    assert.equal(result.stderr, `msgbus serve: HTTP port 127.0.0.1:${port} is already in use\n`)
  })

  it('bad flag values are refused with a message naming them @slow', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--port', 'abc'], /port/i],
      [['--port', '70000'], /port|70000/i],
      [['--max-message-size', 'lots'], /not a size: "lots"/],
      [['--slow-policy', 'maybe'], /slow-policy|maybe/],
      [['--key', 'k.pem'], /cert/],
      [['--bogus'], /bogus/],
    ]
    for (const [args, message] of cases) {
      const result = await serve(args)
      assert.equal(result.code, 2, args.join(' '))
      assert.match(result.stderr, /^msgbus serve: [^\n]+\n$/, 'one line')
      assert.match(result.stderr, message, args.join(' '))
    }
  })

  it('an unreadable certificate or a bad one, or a missing document root: one line, non-zero exit @slow', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'msgbus-serve-'))
    writeFileSync(join(dir, 'junk.pem'), 'not a certificate\n')
    const missing = await serve(['--port', '0', '--cert', join(dir, 'nope.pem')])
    assert.equal(missing.code, 1)
    assert.equal(missing.stderr, `msgbus serve: cannot read certificate ${join(dir, 'nope.pem')}: ENOENT\n`)
    const junk = await serve(['--port', '0', '--cert', join(dir, 'junk.pem')])
    assert.equal(junk.code, 1)
    assert.match(junk.stderr, /^msgbus serve: certificate or key unusable: .+\n$/)
    const docroot = await serve(['--port', '0', '--docroot', join(dir, 'www')])
    assert.equal(docroot.code, 1)
    assert.equal(docroot.stderr, `msgbus serve: document root ${join(dir, 'www')}: no such folder\n`)
  })

  it('--max-message-size takes suffixes', async () => {
    const server = await start(['--max-message-size', '1k'])
    const url = `http://127.0.0.1:${server.port()}/msgbus/x`
    const fits = await request(url, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: Buffer.alloc(1024)})
    const over = await request(url, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: Buffer.alloc(1025)})
    assert.equal(fits.status, 204)
    assert.equal(over.status, 413)
    assert.equal(over.body.toString(), 'message larger than the limit of 1 KiB\n')
  })

  it('-u drops root privileges after binding', async function () {
    if (process.getuid?.() !== 0) this.skip()
    const server = await start(['-u', 'nobody'])
    await server.logged(/running as/)
    assert.match(server.stderr, /running as nobody \(uid \d+, gid \d+\)/)
    const status = readFileSync(`/proc/${server.child.pid}/status`, 'utf8')
    const nobody = (await run('id', ['-u', 'nobody'])).stdout.trim()
    assert.match(status, new RegExp(`^Uid:\\s+${nobody}\\s+${nobody}\\s+${nobody}`, 'm'))
    const reply = await request(`http://127.0.0.1:${server.port()}/msgbus/x`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: 'hi'})
    assert.equal(reply.status, 204)
  })

  it('-u with an unknown user fails with one line', async () => {
    const result = await serve(['--port', '0', '--address', '127.0.0.1', '-u', 'no-such-user-here'])
    assert.notEqual(result.code, 0)
    assert.match(result.stderr, /msgbus serve: (no such user: no-such-user-here|--user no-such-user-here needs the server to be started as root)\n$/)
  })

  it('--help lists every flag', async () => {
    const result = await msgbus(['serve', '--help'])
    assert.equal(result.code, 0)
    for (const flag of ['--port', '--address', '--docroot', '--secret', '--cert', '--key', '--ssl-port', '--user', '--verbose',
      '--max-message-size', '--max-request-size', '--max-body-memory', '--max-pending', '--slow-timeout', '--slow-policy', '--max-subscribers']) {
      assert.ok(result.stdout.includes(flag), flag)
    }
  })
})
