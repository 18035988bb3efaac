// `tail -f app.log | msgbus send logs --lines` when the server goes away:
// the built CLI in its own process, its stdin a pipe the test writes to as
// tail -f would, against real servers (`msgbus serve` processes killed and
// started again on the same port, or a bus in this process).
import assert from 'node:assert/strict'
import {subscribe} from '../src/lib/client/subscribe.js'
import type {ReceivedMessage} from '../src/lib/client/message.js'
import {freePort, MsgbusProcess, ServeProcess, startBus, stopAll, tempFolder, until} from './support/harness.js'

/** The closing report's numbers, from the last line of stderr. */
function report(stderr: string): {sent: number; retried: number; lost: number} {
  const lines = stderr.trimEnd().split('\n')
  const match = /^msgbus send: (\d+) lines? sent, (\d+) retried, (\d+) lost$/.exec(lines.at(-1) ?? '')
  assert.ok(match, `a report as the last line of stderr: ${JSON.stringify(stderr.slice(-600))}`)
  return {sent: Number(match[1]), retried: Number(match[2]), lost: Number(match[3])}
}

/** A subscriber (the library's, which resumes after the last id it got) collecting bodies until stopped. */
function collect(url: string, options: {since?: string} = {}): {bodies: string[]; connected: Promise<unknown>; stop(): void} {
  const controller = new AbortController()
  const subscription = subscribe(url, {signal: controller.signal, minDelayMs: 50, maxDelayMs: 500, ...options})
  const bodies: string[] = []
  const connected = new Promise((resolve) => subscription.once('connect', resolve))
  ;(async () => {
    for await (const message of subscription as AsyncIterable<ReceivedMessage>) bodies.push(message.body.toString())
  })().catch(() => {})
  return {bodies, connected, stop: () => controller.abort()}
}

describe('msgbus send --lines across failures', function () {
  this.timeout(90000)
  const inTemp = tempFolder('msgbus-send-resilience-')
  const serves = new Set<ServeProcess>()
  const stops: Array<() => void> = []

  afterEach(async () => {
    for (const stop of stops.splice(0)) stop()
    MsgbusProcess.killAll()
    await Promise.all([...serves].map((serve) => serve.stop('SIGKILL')))
    serves.clear()
    await stopAll()
  })

  it('the server killed (-9) and started again under a running sender: every line written arrives, in order; the report counts them; exit 0', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const serveArgs = ['-p', String(port), '-l', '127.0.0.1', '--history-dir', inTemp('history')]
    const first = await ServeProcess.start(serveArgs)
    serves.add(first)
    // With --history-dir the subscriber resumes across the restart: what it sees is what the servers took.
    const subscriber = collect(`${url}/msgbus/logs`)
    stops.push(subscriber.stop)
    await subscriber.connected
    const sender = new MsgbusProcess(['send', 'logs', '--lines', '--url', url], {}, {stdin: true})
    const stdin = sender.child.stdin!
    const written: string[] = []
    // A steady trickle, as tail -f gives, that goes on whatever happens to the server.
    const feeder = setInterval(() => {
      for (let i = 0; i < 5; i++) {
        const line = `line ${written.length} of app.log`
        written.push(line)
        stdin.write(`${line}\n`)
      }
    }, 10)
    try {
      await until(() => subscriber.bodies.length >= 100, () => `100 lines through the first server; got ${subscriber.bodies.length}`, 20000)
      await first.stop('SIGKILL')
      await sender.until(() => /retrying/.test(sender.stderr), 'the sender to say it retries', 20000)
      const whileDown = written.length
      await until(() => written.length >= whileDown + 200, '200 more lines written while the server is down')
      const second = await ServeProcess.start(serveArgs)
      serves.add(second)
      await sender.until(() => /reconnected after/.test(sender.stderr), 'the sender to reconnect', 30000)
      const afterRestart = written.length
      await until(() => written.length >= afterRestart + 100, '100 more lines written after the restart')
    } finally {
      clearInterval(feeder)
    }

    stdin.end()
    const result = await sender.exit(30000)
    assert.equal(result.code, 0, result.stderr)
    const last = written.at(-1)!
    await until(() => subscriber.bodies.includes(last), () => `the last line at the subscriber; got ${subscriber.bodies.length} of ${written.length}`, 20000)
    // At least once: a retried line the first server took before it died comes twice; the first of each is in order.
    const seen = new Set<string>()
    const firsts = subscriber.bodies.filter((body) => !seen.has(body) && Boolean(seen.add(body)))
    assert.deepEqual(firsts, written)
    const {sent, retried, lost} = report(result.stderr)
    assert.deepEqual({sent, lost}, {sent: written.length, lost: 0})
    assert.ok(subscriber.bodies.length - firsts.length <= retried, `${subscriber.bodies.length - firsts.length} repeats, at most the ${retried} retried`)
    console.log(`      ${written.length} lines across the restart: ${retried} retried, ${subscriber.bodies.length - firsts.length} of them arrived twice; ${/reconnected after ([^\n]+)/.exec(result.stderr)![1]}`)
    assert.match(result.stderr, /^msgbus send: http:\/\/127\.0\.0\.1:\d+\/msgbus\/logs: [^\n]+: retrying, keeping up to 8 MiB of lines meanwhile\n/)
  })

  it('a full buffer stops the reading of stdin (its writer blocks) and drops nothing; one line says so; all arrive once the server is there', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const sender = new MsgbusProcess(['send', 'logs', '--lines', '--buffer', '4KiB', '--url', url, '-v'], {}, {stdin: true})
    const stdin = sender.child.stdin!
    const lines = Array.from({length: 800}, (_, i) => `${String(i).padStart(5, '0')} ${'x'.repeat(993)}`)
    const input = `${lines.join('\n')}\n`
    stdin.write(input)
    await sender.until(() => /buffer full/.test(sender.stderr), 'the buffer to fill', 20000)
    // What the sender took from the pipe: the 4 KiB buffer, its stdin stream's buffer and the pipe's (64 KiB each
    // on Linux) at most, not the 800 KB written; and it takes no more while the server stays away.
    const taken = (): number => input.length - stdin.writableLength
    const bound = 400 * 1024
    assert.ok(taken() < bound, `took ${taken()} bytes of ${input.length}`)
    const retries = (): number => sender.stderr.split('\n').filter((line) => line.includes('retrying in')).length
    const seen = retries()
    await sender.until(() => retries() > seen, 'another attempt to reach the server', 20000)
    assert.ok(taken() < bound, `took ${taken()} bytes of ${input.length} while blocked`)
    assert.ok(sender.running)

    const server = await startBus({port})
    const subscriber = collect(`${server.url()}/msgbus/logs`, {since: 'all'})
    stops.push(subscriber.stop)
    await sender.until(() => /reconnected after/.test(sender.stderr), 'the sender to reconnect', 20000)
    stdin.end()
    const result = await sender.exit(30000)
    assert.equal(result.code, 0, result.stderr)
    await until(() => subscriber.bodies.length >= lines.length, () => `${lines.length} lines; got ${subscriber.bodies.length}`, 20000)
    // A connection that was refused carried nothing: no line was written twice.
    assert.deepEqual(subscriber.bodies, lines)
    assert.deepEqual(report(result.stderr), {sent: lines.length, retried: 0, lost: 0})
    assert.equal(result.stderr.split('\n').filter((line) => /buffer full/.test(line)).length, 1, result.stderr)
    assert.match(result.stderr, /msgbus send: buffer full \(4 KiB\): not reading stdin until the server takes lines again\n/)
  })

  it('SIGTERM while the server is away: the lines held are reported lost, exit 1; SIGINT with the server there: all sent, exit 0', async () => {
    const away = `http://127.0.0.1:${await freePort()}`
    const stranded = new MsgbusProcess(['send', 'logs', '--lines', '--url', away], {}, {stdin: true})
    stranded.child.stdin!.write('one\ntwo\nthree\n')
    await stranded.until(() => /retrying/.test(stranded.stderr), 'the sender to retry')
    stranded.child.kill('SIGTERM')
    const lost = await stranded.exit(15000)
    assert.equal(lost.code, 1, lost.stderr)
    assert.deepEqual(report(lost.stderr), {sent: 0, retried: 0, lost: 3})

    const server = await startBus()
    const subscriber = collect(`${server.url()}/msgbus/logs`)
    stops.push(subscriber.stop)
    await subscriber.connected
    const sender = new MsgbusProcess(['send', 'logs', '--lines', '--url', server.url()], {}, {stdin: true})
    sender.child.stdin!.write('one\ntwo\nthree\n')
    await until(() => subscriber.bodies.length >= 3, 'three lines')
    sender.child.kill('SIGINT')
    const done = await sender.exit(15000)
    assert.equal(done.code, 0, done.stderr)
    assert.deepEqual(report(done.stderr), {sent: 3, retried: 0, lost: 0})
    assert.deepEqual(subscriber.bodies, ['one', 'two', 'three'])
  })

  // 200 short lines in one write below PIPE_BUF (4,096 bytes): the pipe hands them over whole, so the
  // sender has read them all while its 1 KiB buffer holds a dozen and the rest wait in what it read.
  const twoHundred = Array.from({length: 200}, (_, i) => `line ${String(i).padStart(3, '0')}`)
  const oneWrite = `${twoHundred.join('\n')}\n`

  it('interrupted with lines read but not yet handed over: SIGINT sends them within the grace, SIGTERM with the server away counts them all lost', async () => {
    assert.ok(oneWrite.length < 4096)
    const away = `http://127.0.0.1:${await freePort()}`
    const stranded = new MsgbusProcess(['send', 'logs', '--lines', '--buffer', '1KiB', '--url', away], {}, {stdin: true})
    // ...and the start of a line the interruption cuts short.
    stranded.child.stdin!.write(`${oneWrite}half a li`)
    await stranded.until(() => /buffer full/.test(stranded.stderr), 'the buffer to fill')
    stranded.child.kill('SIGTERM')
    const lost = await stranded.exit(15000)
    assert.equal(lost.code, 1, lost.stderr)
    assert.match(lost.stderr, /\nmsgbus send: stdin ended inside a line: its first 9 bytes not sent\n/)
    assert.deepEqual(report(lost.stderr), {sent: 0, retried: 0, lost: 201})

    // A server that takes the requests and answers none until let go: the sender's buffer stays full.
    const {createServer} = await import('node:http')
    const bodies: string[] = []
    const waiting: Array<() => void> = []
    let open = false
    const server = createServer((request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        bodies.push(Buffer.concat(chunks).toString())
        const answer = (): void => void response.writeHead(204).end()
        if (open) answer()
        else waiting.push(answer)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as {port: number}).port}`
      const sender = new MsgbusProcess(['send', 'logs', '--lines', '--buffer', '1KiB', '--url', url], {}, {stdin: true})
      sender.child.stdin!.write(oneWrite)
      await until(() => bodies.length >= 5, 'the first lines at the server')
      sender.child.kill('SIGINT')
      await new Promise((resolve) => setTimeout(resolve, 300))
      open = true
      for (const answer of waiting.splice(0)) answer()
      const done = await sender.exit(15000)
      assert.equal(done.code, 0, done.stderr)
      assert.deepEqual(report(done.stderr), {sent: 200, retried: 0, lost: 0})
      assert.deepEqual(bodies, twoHundred)
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })

  it('a 503 for one line: that line is sent again and arrives; exit 0', async () => {
    const {createServer} = await import('node:http')
    const bodies: string[] = []
    let refused = false
    // Refuses the first "b" (as a server whose history store hiccups would), takes everything else.
    const server = createServer((request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString()
        if (body === 'b' && !refused) {
          refused = true
          response.writeHead(503).end('busy\n')
          return
        }

        bodies.push(body)
        response.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as {port: number}).port}`
      const sender = new MsgbusProcess(['send', 'logs', '--lines', '--url', url], {}, {stdin: true})
      sender.child.stdin!.end('a\nb\nc\n')
      const result = await sender.exit(20000)
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stderr, /\/msgbus\/logs: 503 busy: retrying/)
      assert.equal(report(result.stderr).lost, 0)
      // What was pipelined behind the refused line may have been taken before it, and again with it.
      assert.deepEqual([...new Set(bodies)].sort(), ['a', 'b', 'c'])
      assert.ok(refused)
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })

  it('--retry-for bounds the retrying: then the lines held are lost, said so, exit 1', async () => {
    const away = `http://127.0.0.1:${await freePort()}`
    const sender = new MsgbusProcess(['send', 'logs', '--lines', '--retry-for', '1s', '--url', away], {}, {stdin: true})
    sender.child.stdin!.write('one\ntwo\n')
    const result = await sender.exit(20000)
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr, /\/msgbus\/logs: connection refused \(gave up after retrying for 1 s\)\n/)
    assert.deepEqual(report(result.stderr), {sent: 0, retried: 0, lost: 2})
  })

  it('what cannot heal stops at once, with stdin still open: 401 (every line would be refused), an unknown host; exit 1', async () => {
    const server = await startBus({secret: 's3cret'})
    const refused = new MsgbusProcess(['send', 'logs', '--lines', '--url', server.url()], {}, {stdin: true})
    refused.child.stdin!.write('one\ntwo\n')
    const unauthorized = await refused.exit(15000)
    assert.equal(unauthorized.code, 1, unauthorized.stderr)
    assert.match(unauthorized.stderr, /^msgbus send: http:\/\/127\.0\.0\.1:\d+\/msgbus\/logs: 401 [^\n]*\n/)
    assert.deepEqual(report(unauthorized.stderr), {sent: 0, retried: 0, lost: 2})

    // Where no name server answers, the lookup fails with EAI_AGAIN, which may heal and is retried: nothing to see then.
    const lookup = await import('node:dns/promises').then(({lookup}) => lookup('no-such-host.invalid')).catch((error: {code?: string}) => error.code)
    if (lookup !== 'ENOTFOUND') return
    const unknown = new MsgbusProcess(['send', 'logs', '--lines', '--url', 'http://no-such-host.invalid:8888'], {}, {stdin: true})
    unknown.child.stdin!.write('one\n')
    const result = await unknown.exit(15000)
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr, /^msgbus send: http:\/\/no-such-host\.invalid:8888\/msgbus\/logs: host not found\n/)
    assert.doesNotMatch(result.stderr, /retrying/)
    assert.deepEqual(report(result.stderr), {sent: 0, retried: 0, lost: 1})
  })
})
