// File descriptors under attack: connections the server is done with must
// not hold a descriptor, and a server out of descriptors must say so and
// keep serving what it can. Counted from the kernel's socket tables.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {readFileSync} from 'node:fs'
import {Agent, request as httpRequest} from 'node:http'
import {request as httpsRequest} from 'node:https'
import {connect, type Socket} from 'node:net'
import type {Logger} from '../src/lib/index.js'
import {answers, assertError} from './support/answers.js'
import {portOf, publish, RawClient, ServeProcess, startBus, stopAll, Subscription, tempFolder, until, type Reply} from './support/harness.js'
import {descriptorsOf, serverSockets, total} from './support/sockets.js'
import {makeCertificate} from './support/tls.js'

/** A client that keeps its end open after the server's FIN, as a careless or hostile one may. */
class HalfOpenClient {
  data = ''
  ended = false
  closed = false

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.data += chunk.toString('latin1')
    })
    socket.on('end', () => {
      this.ended = true
    })
    socket.on('close', () => {
      this.closed = true
    })
    socket.on('error', () => {})
  }

  static async open(port: number, bytes?: string): Promise<HalfOpenClient> {
    const socket = connect({port, host: '127.0.0.1', allowHalfOpen: true})
    await once(socket, 'connect')
    if (bytes !== undefined) socket.write(bytes)
    return new HalfOpenClient(socket)
  }
}

function logCollector(): Logger & {lines: string[]} {
  const lines: string[] = []
  return {level: 0, lines, log: (_level, event, detail) => lines.push(`${event} ${detail}`), warn: (event, detail) => lines.push(`${event} ${detail}`)}
}

/** A request on a given agent (keep-alive connections opened before a flood). */
function requestOn(agent: Agent, url: string, method: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {method, agent, headers: body === undefined ? {} : {'Content-Type': 'text/plain'}}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks)}))
    })
    req.on('error', reject)
    req.end(body)
  })
}

function httpsPublish(port: number, channel: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {host: '127.0.0.1', port, path: `/msgbus/${channel}`, method: 'POST', rejectUnauthorized: false, agent: false, headers: {'Content-Type': 'text/plain'}},
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode!))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

/** Opens `count` connections a few at a time (a burst of thousands of SYNs would only measure the kernel's backlog). */
async function openMany<T>(count: number, open: () => Promise<T>): Promise<T[]> {
  const opened: T[] = []
  for (let i = 0; i < count; i += 50) opened.push(...(await Promise.all(Array.from({length: Math.min(50, count - i)}, open))))
  return opened
}

describe('descriptors', function () {
  this.timeout(30000)
  afterEach(stopAll)
  const inTemp = tempFolder('msgbus-fd-')
  let pair: {certFile: string; keyFile: string}
  before(async () => {
    pair = await makeCertificate(inTemp())
  })

  it('HTTPS: connections that never finish a handshake are closed at the handshake timeout and hold no descriptor, whether or not the client left first @slow', async () => {
    const server = await startBus({cert: readFileSync(pair.certFile), key: readFileSync(pair.keyFile), headerTimeout: 1})
    const port = server.addresses!.https!.port
    const silent = await openMany(40, () => RawClient.open(port))
    const plainHttp = await openMany(10, () => RawClient.open(port, 'GET /msgbus/x HTTP/1.1\r\nHost: x\r\n\r\n'))
    const leaving = await openMany(40, () => RawClient.open(port))
    for (const client of leaving) client.socket.end()
    const started = Date.now()
    await Promise.all([...silent, ...plainHttp].map((client) => client.untilClosed(8000)))
    const closedAfter = Date.now() - started
    await until(() => total(serverSockets(port)) === 0, () => `the server to let go of its sockets: ${JSON.stringify(serverSockets(port))}`, 8000)
    console.log(`      (90 connections: closed ${closedAfter} ms after a 1 s handshake timeout; server sockets left: 0)`)
    assert.equal(await httpsPublish(port, 'after', 'still serving'), 204)
  })

  it('408 and 400: the connection is closed after a short linger even when the client keeps its end open @slow', async () => {
    const server = await startBus({headerTimeout: 1})
    const port = portOf(server)
    const witness = await Subscription.open(server, '/msgbus/witness')
    const slow = await openMany(60, () => HalfOpenClient.open(port, 'GET /msgbus/x HTTP/1.1\r\nHost: x\r\n'))
    const garbage = await openMany(60, () => HalfOpenClient.open(port, 'GARBAGE\r\n\r\n'))
    const clients = [...slow, ...garbage]
    await until(() => clients.every((client) => client.ended), 'every client to get its answer and our FIN', 8000)
    const answered = Date.now()
    for (const client of slow) assertError(answers(client.data)[0], 408, /^request head not received within 1 s/)
    for (const client of garbage) assertError(answers(client.data)[0], 400, /^bad request: /)
    // The witness subscription is the one connection the server should still hold.
    await until(() => total(serverSockets(port)) === 1, () => `the server to let go: ${JSON.stringify(serverSockets(port))}`, 8000)
    console.log(`      (120 half-open clients: descriptors freed ${Date.now() - answered} ms after their answers)`)
    assert.ok(clients.every((client) => !client.closed), 'the clients kept their end open all along')
    for (const client of clients) client.socket.destroy()
    assert.equal((await publish(server, 'witness', 'fine')).status, 204)
    await witness.waitParts(1)
  })

  it('--max-connections: past it a connection gets 503 and is closed, once logged; open ones keep working; room again is logged', async () => {
    const logger = logCollector()
    const server = await startBus({maxConnections: 6, logger})
    const port = portOf(server)
    const subscriber = await Subscription.open(server, '/msgbus/kept')
    const publisher = new Agent({keepAlive: true, maxSockets: 1})
    assert.equal((await requestOn(publisher, `${server.url()}/msgbus/kept`, 'POST', 'one')).status, 204)
    const holders = await openMany(4, () => RawClient.open(port))
    const refused = await openMany(5, () => RawClient.open(port, 'GET /msgbus/kept HTTP/1.1\r\nHost: x\r\n\r\n'))
    for (const client of refused) {
      const [answer] = answers(await client.untilClosed(5000))
      assertError(answer, 503, /^the server is at its connection limit \(6\); try again later/)
      assert.equal(answer.headers['retry-after'], '5')
    }

    assert.equal(server.bus.subscriberCount, 1, 'no refused request was handled')
    assert.equal(server.counters().connectionsRefused, 5)
    assert.equal(logger.lines.filter((line) => /^limit .*connections open, the limit \(--max-connections 6\)/.test(line)).length, 1, logger.lines.join('\n'))
    // The keep-alive publisher and the subscriber were in before the cap.
    assert.equal((await requestOn(publisher, `${server.url()}/msgbus/kept`, 'POST', 'two')).status, 204)
    assert.deepEqual((await subscriber.waitParts(2)).map((part) => part.body.toString()), ['one', 'two'])
    for (const client of holders) client.close()
    await until(() => logger.lines.some((line) => /^limit back under the connection limit: \d+ open; 5 connections were refused/.test(line)), 'the all-clear', 5000)
    assert.equal((await publish(server, 'kept', 'three')).status, 204)
    publisher.destroy()
  })

  describe('out of descriptors (ulimit -n 256)', () => {
    it('a flood of silent HTTP and HTTPS connections: refused with 503 past the cap, logged, established clients keep going, and the server recovers @slow', async () => {
      const serve = await ServeProcess.start(
        ['-p', '0', '-P', '0', '-l', '127.0.0.1', '-c', pair.certFile, '--key', pair.keyFile, '--header-timeout', '2'],
        {},
        {openFiles: 256},
      )
      const pid = serve.child.pid!
      const http = serve.port('HTTP')
      const https = serve.port('HTTPS')
      const url = `http://127.0.0.1:${http}/msgbus/kept`
      try {
        const subscriber = await RawClient.open(http, 'GET /msgbus/kept HTTP/1.1\r\nHost: x\r\n\r\n')
        await subscriber.until((text) => text.includes('\r\n\r\n'))
        const publisher = new Agent({keepAlive: true, maxSockets: 1})
        assert.equal((await requestOn(publisher, url, 'POST', 'before')).status, 204)

        const flood = [...(await openMany(200, () => RawClient.open(https))), ...(await openMany(200, () => RawClient.open(http)))]
        let peak = descriptorsOf(pid).all
        const sampler = setInterval(() => {
          peak = Math.max(peak, descriptorsOf(pid).all)
        }, 20)
        try {
          assert.equal((await requestOn(publisher, url, 'POST', 'during')).status, 204, 'a keep-alive publisher from before the flood')
          await subscriber.until((text) => text.includes('during'), 5000, 'the message published during the flood')
          // Every flood connection is answered 503, or closed at its timeout.
          await Promise.all(flood.map((client) => client.untilClosed(15000)))
        } finally {
          clearInterval(sampler)
        }

        const refused = flood.filter((client) => answers(client.text())[0]?.status === 503).length
        assert.ok(refused > 0, 'some were refused with 503')
        assert.match(serve.stderr, /limit \d+ connections open, the limit \(\d+, from the open-file limit of 256\): new connections get 503/)
        assert.ok(peak < 256, `the server stayed inside its open-file limit: peak ${peak}`)
        console.log(`      (400 flood connections: ${refused} answered 503, the rest closed at their timeouts; the server's descriptors peaked at ${peak} of 256)`)
        for (const client of flood) client.close()
        await until(() => /limit back under the connection limit/.test(serve.stderr), 'the all-clear in the log', 10000)
        await until(() => total(serverSockets(https)) === 0, () => `HTTPS sockets let go: ${JSON.stringify(serverSockets(https))}`, 10000)
        assert.equal(await httpsPublish(https, 'kept', 'after, over HTTPS'), 204)
        assert.equal((await requestOn(new Agent(), url, 'POST', 'after')).status, 204)
        await subscriber.until((text) => text.includes('after, over HTTPS') && text.includes('after'), 5000)
        publisher.destroy()
        subscriber.close()
      } finally {
        await serve.stop()
      }
    })
  })
})
