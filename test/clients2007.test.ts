// The 2007 clients against msgbus, unmodified: libevmsg (behind the 2007
// test-sub, msgdump.py and msgchat.py) and Python 2's urllib (msgdump2.py)
// and urllib2, each replayed from its exact request bytes and read the way it
// reads (test/support/clients2007.ts). Their streams are framed the 2007 way
// (docs/protocol.md, "The 2007 clients"); everyone else keeps RFC 2046.
import assert from 'node:assert/strict'
import {subscribe, type BusServer, type ReceivedMessage} from '../src/lib/index.js'
import {assertError, raw} from './support/answers.js'
import {LibevmsgSubscriber, PythonSubscriber, type Received2007} from './support/clients2007.js'
import {dechunk, portOf, publish, RawClient, startBus, stopAll, Subscription} from './support/harness.js'

const B = 'b2007'
const alice = `Basic ${Buffer.from('alice:pw').toString('base64')}`

/** What the issue asks for, and what broke before: trailing line ends, leading dashes, empty, binary, a leading CR. */
const MESSAGES: Array<{name: string; type: string; body: Buffer; sender?: string}> = [
  {name: 'text', type: 'text/plain', body: Buffer.from('hello world')},
  {name: 'a body ending in CRLF', type: 'text/plain', body: Buffer.from('line one\r\nline two\r\n')},
  {name: 'a body starting with --', type: 'text/plain', body: Buffer.from('--00MsgBus00\n-- not a delimiter --\n'), sender: 'alice'},
  {name: 'an empty body', type: 'text/plain', body: Buffer.alloc(0)},
  {name: 'a binary body', type: 'application/octet-stream', body: Buffer.from(Array.from({length: 256}, (_, i) => i)), sender: 'alice'},
  {name: 'a body starting with CR LF', type: 'text/plain', body: Buffer.from('\r\nafter a blank line')},
  {name: 'HTML', type: 'text/html', body: Buffer.from('<h1>hello world</h1>\n')},
]

async function publishAll(server: BusServer, channel: string): Promise<void> {
  for (const message of MESSAGES) {
    const reply = await publish(server, channel, message.body, message.type, message.sender ? {Authorization: alice} : {})
    assert.equal(reply.status, 204)
  }
}

/** Every message, in order, byte for byte, as the client hands it over. */
function assertAllReceived(received: Received2007[], channel: string, what: string): void {
  assert.equal(received.length, MESSAGES.length, `${what}: ${received.length} messages`)
  MESSAGES.forEach((sent, i) => {
    const got = received[i]
    const label = `${what}, ${sent.name}`
    assert.equal(got.channel, channel, label)
    assert.equal(got.type, sent.type, label)
    assert.equal(got.sender, sent.sender, label)
    assert.ok(got.body.equals(sent.body), `${label}: got ${JSON.stringify(got.body.toString('latin1'))}, sent ${JSON.stringify(sent.body.toString('latin1'))}`)
  })
}

describe('the 2007 clients, unmodified', function () {
  this.timeout(15000)
  afterEach(stopAll)

  describe('libevmsg (test-sub, msgdump.py, msgchat.py)', () => {
    it('gets every message byte for byte, anonymous or not, through its type=*&sender=*', async () => {
      const server = await startBus({boundary: B})
      const libevmsg = await LibevmsgSubscriber.open(server, 'interop')
      assert.equal(libevmsg.status, 200)
      await publishAll(server, 'interop')
      assertAllReceived(await libevmsg.waitMessages(MESSAGES.length), 'interop', 'libevmsg')
      // One message per chunk, each starting with its headers: the opening delimiter, then the messages.
      const chunks = libevmsg.chunks()
      assert.equal(chunks.length, 1 + MESSAGES.length)
      assert.equal(chunks[0].toString(), `--${B}\r\n`)
      for (const chunk of chunks.slice(1)) assert.ok(chunk.toString('latin1').startsWith('Content-Type: '), JSON.stringify(chunk.toString('latin1')))
    })

    it('on every channel, names each message by its Content-Location; its filters pick as the 2007 server did', async () => {
      const server = await startBus({boundary: B})
      const all = await LibevmsgSubscriber.open(server, '')
      // msgdump.py -t 'text/*' -s alice
      const picky = await LibevmsgSubscriber.open(server, 'sensors/kitchen', {type: 'text/*', sender: 'alice'})
      await publish(server, 'sensors/kitchen', '21.5', 'text/plain', {Authorization: alice})
      await publish(server, 'sensors/kitchen', 'anonymous', 'text/plain')
      await publish(server, 'sensors/kitchen', Buffer.from([0xff, 0xd8]), 'image/jpeg', {Authorization: alice})
      await publish(server, 'news', 'hi', 'text/plain')
      const everything = await all.waitMessages(4)
      assert.deepEqual(
        everything.map((m) => [m.channel, m.type, m.sender, m.body.toString('latin1')]),
        [
          ['sensors/kitchen', 'text/plain', 'alice', '21.5'],
          ['sensors/kitchen', 'text/plain', undefined, 'anonymous'],
          ['sensors/kitchen', 'image/jpeg', 'alice', '\xff\xd8'],
          ['news', 'text/plain', undefined, 'hi'],
        ],
      )
      const picked = await picky.waitMessages(1)
      assert.deepEqual(
        picked.map((m) => [m.channel, m.sender, m.body.toString()]),
        [['sensors/kitchen', 'alice', '21.5']],
      )
    })

    it('publishes with its own request bytes (204, as libevmsg and msgsend.py expect), with and without Basic auth', async () => {
      const server = await startBus({boundary: B})
      const libevmsg = await LibevmsgSubscriber.open(server, 'chat')
      // evmsg_publish: Host, User-Agent, [Authorization], Content-Type, and the Content-Length libevent adds to a POST.
      const client = await RawClient.open(portOf(server))
      const post = (body: string, auth = '') =>
        `POST /msgbus/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: libevmsg\r\n${auth}Content-Type: text/html\r\nContent-Length: ${body.length}\r\n\r\n${body}`
      // Two on one persistent connection, as evmsg's publishing connection is.
      client.socket.write(post('<b>hi</b>') + post('signed', `Authorization: Basic ${Buffer.from('bob:foobar').toString('base64')}\r\n`))
      const answered = await client.until((text) => (text.match(/HTTP\/1\.1 204 /g) ?? []).length === 2, 5000, 'two 204s')
      assert.ok(!answered.includes('HTTP/1.1 4'), answered)
      client.close()
      // msgsend.py (httplib, its headers in a dict's order): it raises unless the status is exactly 204.
      const msgsend = await raw(server, 'POST', '/msgbus/chat', 'Accept-Encoding: identity\r\nContent-Length: 9\r\nContent-Type: text/html\r\n', '<i>hi</i>')
      assert.equal(msgsend.status, 204)
      // test-curl (libcurl): Accept */*, its own Content-Type.
      const testCurl = await raw(server, 'POST', '/msgbus/chat', 'Accept: */*\r\nContent-Type: text/html\r\nContent-Length: 15\r\n', 'hello world 0!\n')
      assert.equal(testCurl.status, 204)
      const got = await libevmsg.waitMessages(4)
      assert.deepEqual(
        got.map((m) => [m.type, m.sender, m.body.toString()]),
        [
          ['text/html', undefined, '<b>hi</b>'],
          ['text/html', 'bob', 'signed'],
          ['text/html', undefined, '<i>hi</i>'],
          ['text/html', undefined, 'hello world 0!\n'],
        ],
      )
    })

    it('sees the stream end at shutdown: the close delimiter in a chunk of its own, then the last chunk', async () => {
      const server = await startBus({boundary: B})
      const libevmsg = await LibevmsgSubscriber.open(server, 'foo')
      await publish(server, 'foo', 'last')
      await libevmsg.waitMessages(1)
      await server.stop()
      const text = await libevmsg.client.untilClosed()
      const close = `--${B}--\r\n`
      assert.ok(text.endsWith(`last--${B}\r\n\r\n${close.length.toString(16)}\r\n${close}\r\n0\r\n\r\n`), JSON.stringify(text.slice(-80)))
      assert.equal(libevmsg.messages().length, 1, 'the close is no message')
    })
  })

  for (const library of ['urllib', 'urllib2'] as const) {
    describe(`Python 2 ${library} (${library === 'urllib' ? 'msgdump2.py: HTTP/1.0' : 'HTTP/1.1, de-chunked by httplib'})`, () => {
      it('reads Content-Length bytes and finds the delimiter on the very next line, message after message', async () => {
        const server = await startBus({boundary: B})
        const python = await PythonSubscriber.open(server, 'interop', library)
        assert.equal(python.headers.has('transfer-encoding'), library === 'urllib2')
        await publishAll(server, 'interop')
        assertAllReceived(await python.waitMessages(MESSAGES.length), 'interop', library)
      })

      it('with msgdump2.py -s and -t (urlencode) and on every channel', async () => {
        const server = await startBus({boundary: B})
        const picky = await PythonSubscriber.open(server, 'a', library, '?sender=alice&type=text%2F%2A')
        const all = await PythonSubscriber.open(server, '', library)
        await publish(server, 'a', 'anonymous')
        await publish(server, 'a', 'from alice', 'text/plain', {Authorization: alice})
        await publish(server, 'b/c', '<p>', 'text/html')
        assert.deepEqual(
          (await picky.waitMessages(1)).map((m) => [m.channel, m.sender, m.body.toString()]),
          [['a', 'alice', 'from alice']],
        )
        assert.deepEqual(
          (await all.waitMessages(3)).map((m) => [m.channel, m.type, m.body.toString()]),
          [
            ['a', 'text/plain', 'anonymous'],
            ['a', 'text/plain', 'from alice'],
            ['b/c', 'text/html', '<p>'],
          ],
        )
      })
    })
  }

  it('before: RFC 2046 framing (?framing=rfc2046) gives libevmsg two extra bytes a body and stops msgdump2.py after one message', async () => {
    const server = await startBus({boundary: B})
    const libevmsg = await LibevmsgSubscriber.open(server, 'foo', {query: 'framing=rfc2046'})
    const python = await PythonSubscriber.open(server, 'foo', 'urllib', '?framing=rfc2046')
    await publish(server, 'foo', 'hello world')
    await publish(server, 'foo', '')
    const got = await libevmsg.waitMessages(2)
    assert.deepEqual(
      got.map((m) => m.body.toString()),
      ['hello world\r\n', '\r\n'],
    )
    await python.client.until(() => python.read().failed !== undefined, 5000, "msgdump2.py's assert")
    assert.deepEqual(python.read(), {messages: [{channel: 'foo', type: 'text/plain', sender: undefined, body: Buffer.from('hello world')}], failed: '\r\n'})
  })
})

describe('choosing the framing', function () {
  this.timeout(15000)
  afterEach(stopAll)

  /** The payload of a stream after one message, `hi`: what follows the body tells the framing. */
  async function framingSeen(server: BusServer, path: string, headers = ''): Promise<{after: string; head: string}> {
    const subscription = await Subscription.open(server, path, headers)
    await publish(server, path.slice('/msgbus/'.length).split('?')[0], 'hi')
    await subscription.client.until(() => /\r\n\r\nhi(?:\r\n)?--/.test(subscription.payload().toString('latin1')), 5000, 'the message')
    const payload = subscription.payload().toString('latin1')
    subscription.close()
    return {after: payload.slice(payload.indexOf('\r\n\r\nhi') + 6), head: subscription.head}
  }

  const RFC = `\r\n--${B}\r\n`
  const OLD = `--${B}\r\n`

  it('auto (the default): the 2007 clients by their User-Agent, RFC 2046 for everyone else, under the same response head', async () => {
    const server = await startBus({boundary: B})
    const cases: Array<[string, string]> = [
      ['', RFC],
      ['User-Agent: curl/8.14.1\r\n', RFC],
      ['User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0\r\n', RFC],
      ['User-Agent: undici\r\n', RFC],
      ['User-Agent: Python-urllib/3.11\r\n', RFC],
      ['User-Agent: libevmsgx\r\n', RFC],
      ['User-Agent: libevmsg\r\n', OLD],
      ['User-Agent: Python-urllib/1.17\r\n', OLD],
      ['User-Agent: Python-urllib/2.7\r\n', OLD],
    ]
    for (const [headers, expected] of cases) {
      const {after, head} = await framingSeen(server, '/msgbus/foo', headers)
      assert.equal(after, expected, `after the body, for ${JSON.stringify(headers)}`)
      // The same head for all: only the bytes between body and delimiter differ.
      assert.match(head, /\r\nContent-Type: multipart\/x-mixed-replace;boundary=b2007\r\n[\s\S]*\r\nVary: Accept, Sec-Fetch-Dest\r\n/)
    }

    // The URL says otherwise, both ways.
    assert.equal((await framingSeen(server, '/msgbus/foo?framing=2007', 'User-Agent: curl/8.14.1\r\n')).after, OLD)
    assert.equal((await framingSeen(server, '/msgbus/foo?framing=RFC2046', 'User-Agent: libevmsg\r\n')).after, RFC)
  })

  it('serve --framing 2007 frames every multipart stream the 2007 way, rfc2046 none; the URL still wins; <img> keeps its framing', async () => {
    const old = await startBus({boundary: B, framing: '2007'})
    assert.equal((await framingSeen(old, '/msgbus/foo', 'User-Agent: curl/8.14.1\r\n')).after, OLD)
    assert.equal((await framingSeen(old, '/msgbus/foo?framing=rfc2046')).after, RFC)
    const image = await framingSeen(old, '/msgbus/foo', 'Sec-Fetch-Dest: image\r\n')
    assert.equal(image.after, `\r\n--${B}\r\n\r\n`, 'the image framing: delimiter and an empty header block after each body')

    const modern = await startBus({boundary: B, framing: 'rfc2046'})
    assert.equal((await framingSeen(modern, '/msgbus/foo', 'User-Agent: libevmsg\r\n')).after, RFC)
    assert.equal((await framingSeen(modern, '/msgbus/foo?framing=2007', 'User-Agent: libevmsg\r\n')).after, OLD)
  })

  it('an unknown ?framing= is a 400 saying which are known; other formats ignore it; a bad --framing stops the server', async () => {
    const server = await startBus({boundary: B})
    const bad = await raw(server, 'GET', '/msgbus/foo?framing=1999')
    assertError(bad, 400, /^unknown framing "1999" \(known: rfc2046, 2007\)/)
    const sse = await RawClient.open(portOf(server), 'GET /msgbus/foo?format=sse&framing=2007 HTTP/1.1\r\nHost: x\r\n\r\n')
    await sse.until((text) => text.includes('retry: 2000'))
    assert.match(sse.text(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Type: text\/event-stream/)
    sse.close()
    // HEAD says what GET would, and starts nothing.
    const head = await raw(server, 'HEAD', '/msgbus/foo?framing=2007', 'User-Agent: curl/8\r\n')
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-type'], `multipart/x-mixed-replace;boundary=${B}`)
    await assert.rejects(startBus({framing: 'legacy' as never}), /^Error: unknown framing "legacy" \(known: auto, rfc2046, 2007\)$/)
  })

  it('the exact bytes of a 2007-framed stream, HTTP/1.1 and HTTP/1.0, to the close at shutdown', async () => {
    const server = await startBus({boundary: B})
    const eleven = await RawClient.open(portOf(server), 'GET /msgbus/foo?framing=2007 HTTP/1.1\r\nHost: x\r\n\r\n')
    const ten = await RawClient.open(portOf(server), 'GET /msgbus/foo?framing=2007 HTTP/1.0\r\n\r\n')
    await eleven.until((text) => text.endsWith(`--${B}\r\n\r\n`))
    await ten.until((text) => text.endsWith(`\r\n\r\n--${B}\r\n`))
    const reply = await publish(server, 'foo', 'hi\r\n', 'text/plain', {Authorization: alice})
    const part = `Content-Type: text/plain\r\nContent-Length: 4\r\nContent-Location: /msgbus/foo\r\nMessage-ID: ${reply.headers['msgbus-id']}\r\nFrom: alice\r\n\r\nhi\r\n--${B}\r\n`
    await eleven.until((text) => text.endsWith(`${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`))
    await ten.until((text) => text.endsWith(part))
    await server.stop()
    const chunked = await eleven.untilClosed()
    const body = chunked.slice(chunked.indexOf('\r\n\r\n') + 4)
    const {payload, ended} = dechunk(Buffer.from(body, 'latin1'))
    assert.ok(ended)
    assert.equal(payload.toString('latin1'), `--${B}\r\n${part}--${B}--\r\n`)
    const plain = await ten.untilClosed()
    assert.equal(plain.slice(plain.indexOf('\r\n\r\n') + 4), `--${B}\r\n${part}--${B}--\r\n`)
  })

  it('our own client reads a 2007-framed stream byte for byte (its parts carry Content-Length)', async () => {
    const server = await startBus({boundary: B})
    const controller = new AbortController()
    const stream = subscribe(`${server.url()}/msgbus/interop?framing=2007`, {reconnect: false, signal: controller.signal})
    const connected = new Promise((resolve) => stream.once('connect', resolve))
    const received: ReceivedMessage[] = []
    const reading = (async () => {
      for await (const message of stream) {
        received.push(message)
        if (received.length === MESSAGES.length) break
      }
    })()
    await connected
    await publishAll(server, 'interop')
    await reading
    controller.abort()
    assertAllReceived(
      received.map((m) => ({channel: m.channel, type: m.type, sender: m.sender, body: m.body})),
      'interop',
      'msgbus subscribe',
    )
  })
})
