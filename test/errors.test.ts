// The error statuses of docs/protocol.md, each with its one-line reason, and the
// request handling around them: methods, HEAD, limits, disconnects, pipelining.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import type {BusServer} from '../src/lib/index.js'
import {answers, assertError, basic, post, raw, SERVER, type Answer} from './support/answers.js'
import {portOf, tempFolder, publish, RawClient, request, startBus, stopAll, Subscription, assertIncreasing, until, type Reply} from './support/harness.js'
import {serverCaughtUp, unread} from './support/sockets.js'

/** A client that writes its argument in one write, counts its reads until eight answers have come, and prints them. */
const PIPELINED_CLIENT = `
const socket = require('node:net').connect(Number(process.argv[1]), '127.0.0.1', () => socket.write(process.argv[2]))
let reads = 0
let text = ''
socket.on('data', (chunk) => {
  reads++
  text += chunk.toString('latin1')
  if ((text.match(/^HTTP\\/1\\.1 /gm) || []).length >= 8) {
    process.stdout.write(JSON.stringify({reads, answers: text}))
    socket.destroy()
  }
})
setTimeout(() => { process.stdout.write(JSON.stringify({reads, answers: text})); process.exit(1) }, 10000).unref()
`

describe('errors and methods', function () {
  this.timeout(10000)
  afterEach(stopAll)
  const inTemp = tempFolder('msgbus-errors-')

  describe('publishing', () => {
    let server: BusServer
    beforeEach(async () => {
      server = await startBus()
    })

    it('no Content-Type: 400', async () => {
      assertError(await post(server, '/msgbus/foo', 'hello', ''), 400, /Content-Type/)
    })

    for (const type of ['text', 'text/', '/plain', 'text plain', 'text/plain; =x', 'text/plain; charset', '', 'ü/ü']) {
      it(`a Content-Type that is not a media type (${JSON.stringify(type)}): 400`, async () => {
        assertError(await post(server, '/msgbus/foo', 'hello', `Content-Type: ${type}\r\n`), 400, /media type|Content-Type/)
      })
    }

    it('a malformed form (no boundary, no parts, a broken part header): 400, and none of it is published', async () => {
      const part = '--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nfine\r\n'
      for (const [type, body] of [
        ['multipart/form-data', `${part}--XyZ--\r\n`],
        ['multipart/form-data; boundary=XyZ', 'no delimiter anywhere'],
        ['multipart/form-data; boundary=XyZ', '--XyZ--\r\n'],
        ['multipart/form-data; boundary=XyZ', `${part}--XyZ\r\nContent-Disposition form-data broken\r\n\r\nx\r\n--XyZ--\r\n`],
      ]) {
        assertError(await post(server, '/msgbus/foo', body, `Content-Type: ${type}\r\n`), 400, /form/, `${type} ${JSON.stringify(body)}`)
      }

      assert.equal(server.counters().published, 0)
      assert.equal((await post(server, '/msgbus/foo', `${part}--XyZ--\r\n`, 'Content-Type: multipart/form-data; boundary=XyZ\r\n')).status, 204)
    })

    it('publishing to /msgbus/ (every channel): 400', async () => {
      assertError(await post(server, '/msgbus/', 'hello'), 400, /channel/)
      assertError(await post(server, '/msgbus/?type=text/plain', 'hello'), 400, /channel/)
      assert.equal(server.counters().published, 0)
    })
  })

  describe('channels', () => {
    const bad: Array<[string, RegExp, string]> = [
      ['a%09b', /control/, 'TAB'],
      ['a%00b', /control/, 'NUL'],
      ['a%01b', /control/, 'a C0 control'],
      ['a%0D%0AFrom:%20x', /control/, 'CR LF'],
      ['a%1Fb', /control/, 'US'],
      ['a%7Fb', /control/, 'DEL'],
      ['%C3%28', /UTF-8/, 'invalid UTF-8'],
      ['%FF', /UTF-8/, 'a lone byte over 0x7F'],
      ['%ED%A0%80', /UTF-8/, 'an encoded surrogate'],
      ['%zz', /percent/, 'invalid percent-encoding'],
      ['a%2', /percent/, 'truncated percent-encoding'],
      ['100%', /percent/, 'a trailing percent sign'],
      ['x'.repeat(256), /255/, '256 ASCII bytes'],
      ['%C3%A9'.repeat(128), /255/, '128 two-byte characters (256 bytes)'],
    ]

    for (const [channel, reason, why] of bad) {
      it(`${why}: 400 for GET, HEAD and POST, with a one-line reason`, async () => {
        const server = await startBus()
        assertError(await raw(server, 'GET', `/msgbus/${channel}`), 400, reason, 'GET')
        assertError(await post(server, `/msgbus/${channel}`, 'hello'), 400, reason, 'POST')
        const head = await raw(server, 'HEAD', `/msgbus/${channel}`)
        assert.equal(head.status, 400)
        assert.ok(head.bytes.endsWith('\r\n\r\n'), 'no body for HEAD')
        assert.equal(server.bus.subscriberCount, 0)
        assert.equal(server.counters().published, 0)
      })
    }

    it('a raw DEL byte in the URL: 400 (from the HTTP parser), one line', async () => {
      const server = await startBus()
      const client = await RawClient.open(portOf(server))
      client.socket.write(Buffer.concat([Buffer.from('GET /msgbus/a'), Buffer.from([0x7f]), Buffer.from('b HTTP/1.1\r\nHost: x\r\n\r\n')]))
      const [answer] = answers(await client.untilClosed(3000))
      assertError(answer, 400)
    })

    it('255 bytes is accepted (ASCII, and 127 two-byte characters plus one), and %2F is a slash', async () => {
      const server = await startBus()
      for (const channel of ['x'.repeat(255), '%C3%A9'.repeat(127) + 'a']) {
        const subscription = await Subscription.open(server, `/msgbus/${channel}`)
        const reply = await post(server, `/msgbus/${channel}`, 'fits')
        assert.equal(reply.status, 204)
        assert.equal(reply.headers['msgbus-subscribers'], '1')
        const [part] = await subscription.waitParts(1)
        assert.equal(part.headers['content-location'], `/msgbus/${channel}`)
        subscription.close()
      }

      const nested = await Subscription.open(server, '/msgbus/a/b')
      assert.equal((await post(server, '/msgbus/a%2Fb', 'slash')).headers['msgbus-subscribers'], '1')
      await nested.waitParts(1)
    })

    it('/msgbus without the slash: 308 to /msgbus/, the query kept, for every method', async () => {
      const server = await startBus()
      for (const [target, location] of [
        ['/msgbus', '/msgbus/'],
        ['/msgbus?type=text/*&sender=a,b', '/msgbus/?type=text/*&sender=a,b'],
      ]) {
        for (const method of ['GET', 'POST']) {
          const answer = method === 'POST' ? await post(server, target, 'x') : await raw(server, method, target)
          assertError(answer, 308, /\/msgbus\//, `${method} ${target}`)
          assert.equal(answer.headers.location, location)
        }
      }

      const head = await raw(server, 'HEAD', '/msgbus')
      assert.equal(head.status, 308)
      assert.equal(head.headers.location, '/msgbus/')
      assert.equal(server.counters().published, 0)
    })
  })

  describe('methods', () => {
    it('HEAD on a bus URL: the headers a GET gets, no body, no subscription; the connection stays usable', async () => {
      const server = await startBus()
      const get = await RawClient.open(portOf(server), 'GET /msgbus/foo HTTP/1.1\r\nHost: x\r\n\r\n')
      const getText = await get.until((text) => text.includes('\r\n\r\n'))
      const [getAnswer] = answers(getText.slice(0, getText.indexOf('\r\n\r\n') + 4), ['HEAD'])
      get.close()
      await until(() => server.bus.subscriberCount === 0, 'the GET subscription to end')

      const client = await RawClient.open(
        portOf(server),
        'HEAD /msgbus/foo?type=text/* HTTP/1.1\r\nHost: x\r\n\r\n' +
          'POST /msgbus/foo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi',
      )
      const text = await client.until((t) => answers(t, ['HEAD', 'POST']).length === 2)
      const [head, published] = answers(text, ['HEAD', 'POST'])
      assert.equal(head.status, 200)
      for (const name of ['content-type', 'cache-control', 'transfer-encoding', 'server']) {
        assert.equal(head.headers[name], getAnswer.headers[name], name)
      }

      assert.match(head.headers['content-type'], /^multipart\/x-mixed-replace;boundary=/)
      assert.equal(head.headers['transfer-encoding'], 'chunked')
      assert.ok(text.slice(text.indexOf('\r\n\r\n') + 4).startsWith('HTTP/1.1 204'), 'no body (not even a chunk) after the HEAD')
      assert.equal(published.status, 204)
      assert.equal(published.headers['msgbus-subscribers'], '0', 'HEAD made no subscription')
      assert.equal(server.bus.subscriberCount, 0)
      client.close()

      // HTTP/1.0: no chunking, and the connection closes.
      const old = await RawClient.open(portOf(server), 'HEAD /msgbus/foo HTTP/1.0\r\n\r\n')
      const oldText = await old.untilClosed(3000)
      assert.match(oldText, /^HTTP\/1\.1 200 /)
      assert.ok(!/transfer-encoding/i.test(oldText))
      assert.ok(oldText.endsWith('\r\n\r\n'))
      assert.equal(server.bus.subscriberCount, 0)
    })

    it('OPTIONS on a bus URL: 204 with Allow', async () => {
      const server = await startBus()
      for (const target of ['/msgbus/foo', '/msgbus/']) {
        const answer = await raw(server, 'OPTIONS', target)
        assert.equal(answer.status, 204)
        assert.equal(answer.headers.allow, 'GET, HEAD, POST, OPTIONS')
        assert.match(answer.headers.server, SERVER)
        assert.ok(answer.bytes.endsWith('\r\n\r\n'))
      }

      assert.equal(server.bus.subscriberCount, 0)
    })

    for (const method of ['PUT', 'DELETE', 'PATCH', 'PROPFIND']) {
      it(`${method} on a bus URL: 405 with Allow: GET, HEAD, POST, OPTIONS, and nothing published`, async () => {
        const server = await startBus()
        const answer = await raw(server, method, '/msgbus/foo', 'Content-Type: text/plain\r\nContent-Length: 5\r\n', 'hello')
        assertError(answer, 405, new RegExp(method), method)
        assert.equal(answer.headers.allow, 'GET, HEAD, POST, OPTIONS')
        assert.equal(server.counters().published, 0)
      })
    }
  })

  describe('Basic auth', () => {
    const controls = ['al\u0001ice', 'al\tice', 'al\nice', 'al\rice', 'al\u007Fice', '\u0000', 'alice\u001B[31m']

    it('a user name with control characters: 400 on any request', async () => {
      const server = await startBus()
      for (const user of controls) {
        for (const [method, target, body] of [
          ['GET', '/msgbus/foo', ''],
          ['HEAD', '/msgbus/foo', ''],
          ['POST', '/msgbus/foo', 'hello'],
          ['OPTIONS', '/msgbus/foo', ''],
          ['GET', '/msgbus', ''],
          ['GET', '/elsewhere', ''],
        ]) {
          const headers = basic(user) + (method === 'POST' ? `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n` : '')
          const answer = await raw(server, method, target, headers, body)
          if (method === 'HEAD') assert.equal(answer.status, 400)
          else assertError(answer, 400, /control/, `${method} ${target} as ${JSON.stringify(user)}`)
        }
      }

      assert.equal(server.bus.subscriberCount, 0)
      assert.equal(server.counters().published, 0)
    })

    it('unreadable Basic credentials: 400; other schemes are ignored', async () => {
      const server = await startBus()
      for (const header of ['Authorization: Basic !!!notbase64\r\n', `Authorization: Basic ${Buffer.from('nocolon').toString('base64')}\r\n`]) {
        assertError(await post(server, '/msgbus/foo', 'x', `Content-Type: text/plain\r\n${header}`), 400, /Basic/)
      }

      assert.equal((await post(server, '/msgbus/foo', 'x', 'Content-Type: text/plain\r\nAuthorization: Bearer abc\r\n')).status, 204)
      // A UTF-8 name without control characters is fine.
      assert.equal((await post(server, '/msgbus/foo', 'x', `Content-Type: text/plain\r\n${basic('zoë')}`)).status, 204)
    })

    it('--secret: 401 with WWW-Authenticate: Basic realm="msgbus" on every kind of request', async () => {
      const server = await startBus({secret: 's3cret'})
      for (const [method, target] of [['GET', '/msgbus/foo'], ['POST', '/msgbus/foo'], ['HEAD', '/msgbus/foo'], ['GET', '/msgbus'], ['GET', '/x'], ['PUT', '/msgbus/foo']]) {
        for (const auth of ['', basic('bob', 'wrong')]) {
          const answer = await raw(server, method, target, auth + (method === 'POST' ? 'Content-Type: text/plain\r\nContent-Length: 0\r\n' : ''))
          assert.equal(answer.status, 401, `${method} ${target} ${auth}`)
          assert.equal(answer.headers['www-authenticate'], 'Basic realm="msgbus"')
          if (method !== 'HEAD') assertError(answer, 401)
        }
      }

      assert.equal(server.bus.subscriberCount, 0)
      assert.equal(server.counters().published, 0)
      assert.equal((await post(server, '/msgbus/foo', 'x', `Content-Type: text/plain\r\n${basic('bob', 's3cret')}`)).status, 204)
    })
  })

  describe('limits', () => {
    it('--max-subscribers: past the limit, 503 with a one-line reason; a freed place can be taken again', async () => {
      const server = await startBus({maxSubscribers: 2})
      const first = await Subscription.open(server, '/msgbus/a')
      const second = await Subscription.open(server, '/msgbus/')
      const refused = await raw(server, 'GET', '/msgbus/b')
      assertError(refused, 503, /subscribers/)
      assert.equal(server.bus.subscriberCount, 2)
      // Publishing is not subscribing.
      assert.equal((await post(server, '/msgbus/a', 'still works')).headers['msgbus-subscribers'], '2')
      first.close()
      await until(() => server.bus.subscriberCount === 1, 'the closed subscription to go')
      const third = await Subscription.open(server, '/msgbus/b')
      assert.equal(server.bus.subscriberCount, 2)
      assertError(await raw(server, 'GET', '/msgbus/c'), 503)
      second.close()
      third.close()
    })

    it('413 is sent as soon as a chunked body passes the limit, while the client is still sending', async () => {
      const server = await startBus({maxMessageSize: 1000})
      const client = await RawClient.open(portOf(server), 'POST /msgbus/big HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n')
      client.socket.write(`3e8\r\n${'x'.repeat(1000)}\r\n`)
      await serverCaughtUp(server)
      assert.equal(client.text(), '', 'exactly the limit so far: no answer yet')
      client.socket.write(`1\r\ny\r\n`)
      // The body never ends; the answer comes anyway.
      const text = await client.until((t) => answers(t).length === 1, 2000, 'the 413')
      assertError(answers(text)[0], 413, /limit/)
      assert.equal(answers(text)[0].headers.connection, 'close')
      await client.untilClosed(2000)
      assert.equal(server.counters().published, 0)
    })

    it('413 for a declared Content-Length over the limit comes before any of the body is sent', async () => {
      const server = await startBus({maxMessageSize: 1000})
      const client = await RawClient.open(portOf(server), 'POST /msgbus/big HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1001\r\n\r\n')
      const text = await client.until((t) => answers(t).length === 1, 2000, 'the 413')
      assertError(answers(text)[0], 413, /limit/)
      await client.untilClosed(2000)
    })

    it('Expect: 100-continue: refused with 413 up front when the declared length is over the limit, else 100 then 204', async () => {
      const server = await startBus({maxMessageSize: 1000})
      const expect = (length: number) =>
        `POST /msgbus/big HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`
      const refused = await RawClient.open(portOf(server), expect(1001))
      const text = await refused.until((t) => answers(t).length === 1, 2000, 'the 413')
      assert.ok(!text.includes('100 Continue'))
      assertError(answers(text)[0], 413, /limit/)

      const accepted = await RawClient.open(portOf(server), expect(1000))
      await accepted.until((t) => t === 'HTTP/1.1 100 Continue\r\n\r\n', 2000, '100 Continue')
      accepted.socket.write('x'.repeat(1000))
      const done = await accepted.until((t) => answers(t).length === 2, 2000, 'the 204')
      assert.equal(answers(done)[1].status, 204)
      assert.equal(server.counters().published, 1)
      accepted.close()
    })

    it('headers too large: 431, one line', async () => {
      const server = await startBus()
      const client = await RawClient.open(portOf(server), `GET /msgbus/foo HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(20000)}\r\n\r\n`)
      const [answer] = answers(await client.untilClosed(3000))
      assertError(answer, 431)
    })
  })

  describe('a publisher that disconnects mid-body publishes nothing', () => {
    const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`
    const cases: Array<[string, string, string]> = [
      ['Content-Length', 'Content-Type: text/plain\r\nContent-Length: 100\r\n', 'only fifty bytes of the hundred promised ......'],
      ['chunked', 'Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n', '5\r\nhello\r\n6\r\n world\r\n'],
      [
        'a form, its first part complete',
        'Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 400\r\n',
        '--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nfirst part\r\n--XyZ\r\nContent-Disposition: form-data; name="b"; filename="b.txt"\r\nContent-Type: text/plain\r\n\r\nsecond pa',
      ],
      [
        'a form, every part complete but not the close delimiter',
        'Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n',
        chunk('--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nfirst part\r\n--XyZ\r\nContent-Disposition: form-data; name="b"\r\n\r\nsecond\r\n'),
      ],
    ]

    for (const [kind, headers, partial] of cases) {
      it(`${kind}: the subscriber sees nothing, then a later message arrives fine`, async () => {
        const server = await startBus()
        const subscription = await Subscription.open(server, '/msgbus/foo')
        const publisher = await RawClient.open(portOf(server), `POST /msgbus/foo HTTP/1.1\r\nHost: x\r\n${headers}\r\n${partial}`)
        // The server has the part of the body before the client goes (else this would prove nothing).
        await until(() => unread(portOf(server)) === 0, 'the server to read the partial body')
        publisher.close()
        // The server has seen it go: only the subscription is left.
        await until(() => server.counters().connections === 1, () => `the publisher's connection to go (${server.counters().connections} open)`)
        assert.equal(server.counters().published, 0)
        assert.equal(publisher.text(), '', 'no answer was sent')
        const reply = await publish(server, 'foo', 'later')
        assert.equal(reply.status, 204)
        assert.equal((await publish(server, 'foo', 'end')).status, 204)
        // Anything published of the partial body would come before the marker.
        assert.deepEqual((await subscription.before('end')).map((part) => part.body.toString()), ['later'])
      })
    }
  })

  describe('keep-alive and pipelining', () => {
    const message = (body: string, channel = 'p') =>
      `POST /msgbus/${channel} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`

    it('three POSTs in one write: three 204s in order, Msgbus-Id increasing, delivered in order', async () => {
      const server = await startBus()
      const subscription = await Subscription.open(server, '/msgbus/p')
      const client = await RawClient.open(portOf(server), message('one') + message('two') + message('three'))
      const text = await client.until((t) => answers(t).length === 3, 3000, 'three answers')
      const list = answers(text)
      assert.deepEqual(list.map((a) => a.status), [204, 204, 204])
      const ids = list.map((a) => a.headers['msgbus-id'])
      assertIncreasing(ids)
      assert.ok(list.every((a) => a.headers['msgbus-subscribers'] === '1'))
      const parts = await subscription.waitParts(3)
      assert.deepEqual(parts.map((p) => p.body.toString()), ['one', 'two', 'three'])
      assert.deepEqual(parts.map((p) => p.headers['message-id']), ids)
      assert.equal(client.closed, false, 'the connection is kept alive')
      client.socket.write(message('four'))
      await client.until((t) => answers(t).length === 4, 3000, 'a fourth answer')
      client.close()
    })

    it('eight POSTs in one write: the eight 204s reach the client together, in one read (the answers corked for the turn, answer-cork.ts)', async () => {
      const server = await startBus()
      // The client in a process of its own, reading as segments come: in this process it could read
      // only once the server's turn is over, and would see one read however the answers were sent.
      const client = spawn(process.execPath, ['-e', PIPELINED_CLIENT, String(portOf(server)), Array.from({length: 8}, (_, i) => message(`m${i}`)).join('')])
      let output = ''
      let errors = ''
      client.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
      client.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()))
      const [code] = (await once(client, 'close')) as [number | null]
      assert.equal(code, 0, `${output}${errors}`)
      const {reads, answers: texts} = JSON.parse(output) as {reads: number; answers: string}
      const list = answers(texts)
      assert.deepEqual(list.map((a) => a.status), Array(8).fill(204), texts)
      assertIncreasing(list.map((a) => a.headers['msgbus-id']))
      // Without the cork each answer is a segment of its own, and such a client reads several times.
      assert.equal(reads, 1, 'the eight answers in one read')
    })

    it('after a pipelined pair, one publish at a time on the connection is answered at once, never held', async () => {
      const server = await startBus()
      const client = await RawClient.open(portOf(server), message('one') + message('two'))
      await client.until((t) => answers(t).length === 2, 5000, 'the pair answered')
      // A socket left corked holds each answer 200 ms in the kernel; answered at once, a publish takes a few ms.
      const times: number[] = []
      for (let i = 1; i <= 7; i++) {
        const started = Date.now()
        client.socket.write(message(`alone ${i}`))
        await client.until((t) => answers(t).length === 2 + i, 5000, `the answer to publish ${i}`)
        times.push(Date.now() - started)
      }
      // The median, so that a busy moment of the machine is not taken for a held answer.
      const median = [...times].sort((a, b) => a - b)[3]
      assert.ok(median < 150, `answers took ${times.join(', ')} ms`)
      client.close()
    })

    it('a refused request in the middle of a pipeline is answered in its place; the others go through', async () => {
      const server = await startBus()
      const subscription = await Subscription.open(server, '/msgbus/p')
      const noType = 'POST /msgbus/p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nwrong'
      const chunked = 'POST /msgbus/p HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n'
      const client = await RawClient.open(
        portOf(server),
        message('one') + noType + 'GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n' + chunked + 'OPTIONS /msgbus/p HTTP/1.1\r\nHost: x\r\n\r\n' + message('three'),
      )
      const text = await client.until((t) => answers(t).length === 6, 3000, 'six answers')
      const list = answers(text)
      assert.deepEqual(list.map((a) => a.status), [204, 400, 404, 204, 204, 204])
      assert.equal(list[4].headers.allow, 'GET, HEAD, POST, OPTIONS')
      assertIncreasing([list[0], list[3], list[5]].map((a) => a.headers['msgbus-id']))
      const parts = await subscription.waitParts(3)
      assert.deepEqual(parts.map((p) => p.body.toString()), ['one', 'two', 'three'])
      client.close()
    })
  })

  it('a request refused mid-pipeline with Connection: close (413) waits for the answers before it, which wait for their fsync', async () => {
    const server = await startBus({historyDir: inTemp('pipelined-413'), maxMessageSize: 10})
    const tooLong = 'POST /msgbus/p HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nfar too big'
    const message = (body: string) => `POST /msgbus/p HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`
    const client = await RawClient.open(portOf(server), message('one') + message('two') + tooLong)
    const text = await client.untilClosed(5000)
    assert.deepEqual(answers(text).map((a) => a.status), [204, 204, 413], text)
    assert.equal(server.counters().published, 2)
  })

  it('every response carries Server: msgbus', async () => {
    const server = await startBus({maxSubscribers: 1, maxMessageSize: 10})
    const subscription = await Subscription.open(server, '/msgbus/s')
    assert.match(subscription.head, /\r\nServer: msgbus(\/\S+)?\r\n/)
    const seen = new Set<number>()
    const check = (answer: Answer | Reply, what: string) => {
      seen.add(answer.status)
      assert.match(String(answer.headers.server), SERVER, `${what}: ${answer.status}`)
    }

    check(await post(server, '/msgbus/s', 'hi'), '204 publish')
    check(await post(server, '/msgbus/s', 'hi', ''), '400 no type')
    check(await post(server, '/msgbus/s', 'far too long a message'), '413')
    check(await raw(server, 'GET', '/msgbus/%zz'), '400 channel')
    check(await raw(server, 'GET', '/msgbus/other'), '503')
    check(await raw(server, 'HEAD', '/msgbus/s'), 'HEAD (503: a GET would get it too)')
    check(await raw(server, 'OPTIONS', '/msgbus/s'), 'OPTIONS')
    check(await raw(server, 'DELETE', '/msgbus/s'), '405')
    check(await raw(server, 'GET', '/msgbus'), '308')
    check(await raw(server, 'GET', '/'), '404')
    check(await raw(server, 'GET', '/msgbus/x', basic('a\u0001b')), '400 user')
    check(await request(`${server.url()}/nothing`), '404 via node')
    const garbage = await RawClient.open(portOf(server), 'NOT HTTP AT ALL\r\n\r\n')
    check(answers(await garbage.untilClosed(3000))[0], '400 from the parser')
    const locked = await startBus({secret: 'x'})
    check(await raw(locked, 'GET', '/msgbus/s'), '401')
    assert.deepEqual([...seen].sort((a, b) => a - b), [204, 308, 400, 401, 404, 405, 413, 503])
    subscription.close()
  })
})
