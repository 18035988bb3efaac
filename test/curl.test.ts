// curl, the binary, drives the server the way its users do: the 2007 README's
// quick test, filters, Basic auth, the secret, size limits, forms and HTTPS.
import assert from 'node:assert/strict'
import {readFileSync, writeFileSync} from 'node:fs'
import type {BusServer} from '../src/lib/index.js'
import {curl, request, run, ServeProcess, startBus, stopAll, assertIncreasing, tempFolder} from './support/harness.js'
import {makeCertificate} from './support/tls.js'
import {CurlStream} from './support/curl-stream.js'

const B = 'curlboundary'



interface CurlReply {
  status: number
  headers: Record<string, string>
  body: string
  /** Interim 1xx statuses seen before the final one. */
  interim: number[]
  /** What `-w` printed after the body, when asked for. */
  written?: string
  code: number | null
}

const WRITE_MARK = '\n@@curl-write@@'

/**
 * Runs `curl -i` and splits its output into the final status, headers and
 * body; `write` is a `-w` format whose output is returned as `written`.
 */
async function curlReply(args: string[], write?: string, input?: Buffer | string): Promise<CurlReply> {
  const result = await curl(['-i', '-g', ...(write ? ['-w', `${WRITE_MARK}${write}`] : []), ...args], {input, timeoutMs: 8000})
  let text = result.stdout
  let written: string | undefined
  if (write) {
    const at = text.lastIndexOf(WRITE_MARK)
    written = text.slice(at + WRITE_MARK.length)
    text = text.slice(0, at)
  }

  const interim: number[] = []
  for (;;) {
    const end = text.indexOf('\r\n\r\n')
    if (end < 0) throw new Error(`no response from curl ${args.join(' ')}: ${result.stderr} ${JSON.stringify(result.stdout)}`)
    const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
    const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine)![1])
    text = text.slice(end + 4)
    if (status >= 100 && status < 200) {
      interim.push(status)
      continue
    }

    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
    }

    return {status, headers, body: text, interim, written, code: result.code}
  }
}

/** An error answer: the status, and a one-line text/plain body. */
function assertError(reply: CurlReply, status: number, reason?: RegExp): void {
  assert.equal(reply.status, status, `expected ${status}, got ${reply.status}: ${reply.body}`)
  assert.equal(reply.headers['content-type'], 'text/plain; charset=utf-8')
  assert.match(reply.body, /^[^\r\n]+\n$/, 'one line')
  if (reason) assert.match(reply.body, reason)
  assert.match(reply.headers.server, /^msgbus/)
}

/** Publishes one message with curl; `args` may add -u, -H and so on. */
function curlPublish(url: string, body: string, type = 'text/plain', args: string[] = []): Promise<CurlReply> {
  return curlReply(['-d', body, '-H', `Content-Type: ${type}`, ...args, url])
}

function ids(reply: CurlReply): string[] {
  return reply.headers['msgbus-id'].split(/\s*,\s*/)
}



describe('curl', function () {
  this.timeout(10000)

  const inTemp = tempFolder('msgbus-curl-')

  afterEach(async () => {
    CurlStream.killAll()
    await stopAll()
  })

  describe('the 2007 README quick test', () => {
    it('a `curl -sN` subscriber on /msgbus/foo receives what `curl -d` POSTs', async () => {
      const server = await startBus({boundary: B})
      const url = `${server.url()}/msgbus/foo`
      const subscriber = await CurlStream.open(url)
      const reply = await curlPublish(url, 'Hello World')
      assert.equal(reply.status, 204)
      assert.equal(reply.body, '')
      assert.equal(reply.headers['msgbus-subscribers'], '1')
      const [part] = await subscriber.waitParts(1)
      assert.equal(part.body.toString(), 'Hello World')
      assert.equal(part.headers['content-type'], 'text/plain')
      assert.equal(part.headers['content-length'], '11')
      assert.equal(part.headers['content-location'], '/msgbus/foo')
      assert.equal(part.headers['message-id'], reply.headers['msgbus-id'])
      assert.equal(part.headers.from, undefined)
    })

    it('plain `curl -d` (no -H) publishes the form-urlencoded body as it is, with that type', async () => {
      const server = await startBus({boundary: B})
      const url = `${server.url()}/msgbus/foo`
      const subscriber = await CurlStream.open(url)
      const reply = await curlReply(['-d', 'a=1&b=two', url])
      assert.equal(reply.status, 204)
      const [part] = await subscriber.waitParts(1)
      assert.equal(part.headers['content-type'], 'application/x-www-form-urlencoded')
      assert.equal(part.body.toString(), 'a=1&b=two')
    })

    it('`--data-binary @file` travels byte for byte, delimiter look-alikes included', async () => {
      const server = await startBus({boundary: B})
      const url = `${server.url()}/msgbus/bin`
      const bytes = Buffer.concat([Buffer.from(`\r\n--${B}\r\n--${B}--\r\n\0`), Buffer.from(Array.from({length: 256}, (_, i) => i))])
      const file = inTemp('blob.bin')
      writeFileSync(file, bytes)
      const subscriber = await CurlStream.open(url)
      const reply = await curlReply(['--data-binary', `@${file}`, '-H', 'Content-Type: application/octet-stream', url])
      assert.equal(reply.status, 204)
      const [part] = await subscriber.waitParts(1)
      assert.deepEqual(part.body, bytes)
      assert.equal(part.headers['content-type'], 'application/octet-stream')
    })

    it('the all-channels subscriber (/msgbus/) gets every channel, `/msgbus/a/b` and `a%2Fb` alike', async () => {
      const server = await startBus({boundary: B})
      const all = await CurlStream.open(`${server.url()}/msgbus/`)
      const nested = await CurlStream.open(`${server.url()}/msgbus/a/b`)
      assert.equal((await curlPublish(`${server.url()}/msgbus/a/b`, 'one')).headers['msgbus-subscribers'], '2')
      assert.equal((await curlPublish(`${server.url()}/msgbus/a%2Fb`, 'two')).headers['msgbus-subscribers'], '2')
      assert.equal((await curlPublish(`${server.url()}/msgbus/other`, 'three')).headers['msgbus-subscribers'], '1')
      const parts = await all.waitParts(3)
      assert.deepEqual(parts.map((p) => p.body.toString()), ['one', 'two', 'three'])
      assert.deepEqual(parts.map((p) => p.headers['content-location']), ['/msgbus/a/b', '/msgbus/a/b', '/msgbus/other'])
      await nested.waitParts(2)
      assert.deepEqual(nested.bodies(), ['one', 'two'])
    })
  })

  describe('filters', () => {
    /**
     * Opens one curl subscriber per query, publishes each message with curl,
     * and checks that every subscriber received exactly the expected messages,
     * in order, and that each publish counted exactly the expected subscribers.
     */
    async function checkFilters(
      server: BusServer,
      queries: string[],
      messages: Array<{body: string; type: string; user?: string}>,
      expected: Record<string, string[]>,
    ): Promise<void> {
      const url = `${server.url()}/msgbus/filtered`
      const subscribers = await Promise.all(queries.map((query) => CurlStream.open(`${url}?${query}`)))
      for (const message of messages) {
        const reply = await curlPublish(url, message.body, message.type, message.user ? ['-u', `${message.user}:pw`] : [])
        assert.equal(reply.status, 204)
        const wanted = queries.filter((query) => expected[query].includes(message.body))
        assert.equal(reply.headers['msgbus-subscribers'], String(wanted.length), `${message.body} goes to ${wanted.join(' ') || 'nobody'}`)
      }

      for (const [i, query] of queries.entries()) {
        const want = expected[query]
        await subscribers[i].waitParts(want.length)
        assert.deepEqual(subscribers[i].bodies(), want, `?${query}`)
      }
    }

    it('?type= with *, ?, ! (OpenSSH lists: only-negated matches nothing, `*,!image/*` is all but images), case-insensitive, parameters ignored @slow', async () => {
      const server = await startBus({boundary: B})
      const messages = [
        {body: 'plain', type: 'text/plain; charset=utf-8'},
        {body: 'png', type: 'image/png'},
        {body: 'jpeg', type: 'image/jpeg'},
        {body: 'json', type: 'application/json'},
        {body: 'html', type: 'TEXT/HTML'},
        {body: 'pjpeg', type: 'image/pjpeg'},
      ]
      const expected: Record<string, string[]> = {
        'type=text/*': ['plain', 'html'],
        'type=*,!image/*': ['plain', 'json', 'html'],
        'type=!image/*': [],
        'type=image/p?g': ['png'],
        'type=TEXT%2FPLAIN': ['plain'],
        'type=text/plain,image/*': ['plain', 'png', 'jpeg', 'pjpeg'],
        'type=image/*,!image/p*': ['jpeg'],
        'type=text/html&type=application/json': ['json', 'html'],
      }
      await checkFilters(server, Object.keys(expected), messages, expected)
    })

    it('?sender= with *, ?, ! matches the Basic auth user, case-sensitively; a message without a sender is the empty name (* lets it through) @slow', async () => {
      const server = await startBus({boundary: B})
      const messages = [
        {body: 'from alice', type: 'text/plain', user: 'alice'},
        {body: 'from bob', type: 'text/plain', user: 'bob'},
        {body: 'from bert', type: 'text/plain', user: 'bert'},
        {body: 'from rob', type: 'text/plain', user: 'rob'},
        {body: 'from Alice', type: 'text/plain', user: 'Alice'},
        {body: 'anonymous', type: 'text/plain'},
        {body: 'bob picture', type: 'image/png', user: 'bob'},
      ]
      const expected: Record<string, string[]> = {
        'sender=alice,b*': ['from alice', 'from bob', 'from bert', 'bob picture'],
        'sender=!alice': [],
        'sender=*,!alice': ['from bob', 'from bert', 'from rob', 'from Alice', 'anonymous', 'bob picture'],
        'sender=?*': ['from alice', 'from bob', 'from bert', 'from rob', 'from Alice', 'bob picture'],
        'sender=?ob': ['from bob', 'from rob', 'bob picture'],
        'sender=Alice': ['from Alice'],
        'type=text/*&sender=bob': ['from bob'],
        'sender=*': ['from alice', 'from bob', 'from bert', 'from rob', 'from Alice', 'anonymous', 'bob picture'],
        // What the 2007 clients (libevmsg) always ask for.
        'type=%2A&sender=%2A': ['from alice', 'from bob', 'from bert', 'from rob', 'from Alice', 'anonymous', 'bob picture'],
      }
      await checkFilters(server, Object.keys(expected), messages, expected)
    })
  })

  describe('Basic auth', () => {
    it('the user name becomes From: (-u, user:pw@ in the URL, UTF-8 names); no auth or an empty user, no From', async () => {
      const server = await startBus({boundary: B})
      const base = server.url()
      const url = `${base}/msgbus/who`
      const subscriber = await CurlStream.open(url)
      assert.equal((await curlPublish(url, 'one', 'text/plain', ['-u', 'alice:secret'])).status, 204)
      assert.equal((await curlPublish(url.replace('://', '://bob:pw@'), 'two')).status, 204)
      assert.equal((await curlPublish(url, 'three', 'text/plain', ['-u', 'zoë:pw'])).status, 204)
      assert.equal((await curlPublish(url, 'four')).status, 204)
      assert.equal((await curlPublish(url, 'five', 'text/plain', ['-u', ':pw'])).status, 204)
      const parts = await subscriber.waitParts(5)
      assert.deepEqual(
        parts.map((p) => [p.body.toString(), p.headers.from]),
        [
          ['one', 'alice'],
          ['two', 'bob'],
          ['three', 'zoë'],
          ['four', undefined],
          ['five', undefined],
        ],
      )
    })
  })

  describe('--secret', () => {
    it('without credentials or with a wrong password: 401 with WWW-Authenticate, and nothing is published', async () => {
      const server = await startBus({boundary: B, secret: 's3cret'})
      const url = `${server.url()}/msgbus/locked`
      const subscriber = await CurlStream.open(url, ['-u', 'watcher:s3cret'])
      for (const extra of [[], ['-u', 'bob:wrong'], ['-u', 'bob:'], ['-u', 'bob:s3cret2'], ['-u', 's3cret:x'], ['-H', 'Authorization: Bearer s3cret']]) {
        const reply = await curlPublish(url, 'sneaky', 'text/plain', extra)
        assertError(reply, 401)
        assert.equal(reply.headers['www-authenticate'], 'Basic realm="msgbus"', extra.join(' '))
      }

      const subscribe = await curlReply(['-m', '3', url])
      assertError(subscribe, 401)
      assert.equal(subscribe.headers['www-authenticate'], 'Basic realm="msgbus"')
      assert.equal((await curlReply(['-X', 'OPTIONS', url])).status, 401)
      const redirect = await curlReply([`${server.url()}/msgbus`])
      assertError(redirect, 401)

      const reply = await curlPublish(url, 'welcome', 'text/plain', ['-u', 'bob:s3cret'])
      assert.equal(reply.status, 204)
      assert.equal(reply.headers['msgbus-subscribers'], '1')
      const parts = await subscriber.waitParts(1)
      assert.deepEqual(subscriber.bodies(), ['welcome'], 'the refused messages never arrived')
      assert.equal(parts[0].headers.from, 'bob')
    })

    it('works with `-u user:secret`, a password holding a colon included', async () => {
      const server = await startBus({boundary: B, secret: 'pa:ss word'})
      const url = `${server.url()}/msgbus/locked`
      const subscriber = await CurlStream.open(url, ['-u', 'me:pa:ss word'])
      assert.equal((await curlPublish(url, 'ok', 'text/plain', ['-u', 'bob:pa:ss word'])).status, 204)
      assertError(await curlPublish(url, 'no', 'text/plain', ['-u', 'bob:pa']), 401)
      await subscriber.waitParts(1)
      assert.deepEqual(subscriber.bodies(), ['ok'])
    })

    it('CORS preflights pass without credentials (browsers cannot send them there)', async () => {
      const server = await startBus({secret: 's3cret'})
      const reply = await curlReply([
        '-X', 'OPTIONS', '-H', 'Origin: http://example.com', '-H', 'Access-Control-Request-Method: POST', `${server.url()}/msgbus/x`,
      ])
      assert.notEqual(reply.status, 401)
      assert.ok(reply.status < 300, `status ${reply.status}`)
    })
  })

  describe('413', () => {
    const LIMIT = 1000

    function file(name: string, size: number): string {
      const path = inTemp(name)
      writeFileSync(path, Buffer.alloc(size, 'x'))
      return path
    }

    async function overLimit(args: string[], write?: string): Promise<CurlReply> {
      const server = await startBus({boundary: B, maxMessageSize: LIMIT})
      const url = `${server.url()}/msgbus/big`
      const subscriber = await CurlStream.open(url)
      const reply = await curlReply([...args, '-H', 'Content-Type: text/plain', url], write)
      assertError(reply, 413, /limit/)
      // Nothing was published: the next message is the subscriber's first.
      const next = await curlPublish(url, 'after')
      assert.equal(next.status, 204)
      await subscriber.waitParts(1)
      assert.deepEqual(subscriber.bodies(), ['after'])
      return reply
    }

    it('a body of exactly the limit is accepted, with Content-Length and chunked', async () => {
      const server = await startBus({boundary: B, maxMessageSize: LIMIT})
      const url = `${server.url()}/msgbus/big`
      const subscriber = await CurlStream.open(url)
      const exact = file('exact.txt', LIMIT)
      assert.equal((await curlReply(['--data-binary', `@${exact}`, '-H', 'Content-Type: text/plain', url])).status, 204)
      const chunked = ['--data-binary', `@${exact}`, '-H', 'Content-Type: text/plain', '-H', 'Transfer-Encoding: chunked', url]
      assert.equal((await curlReply(chunked)).status, 204)
      const parts = await subscriber.waitParts(2)
      assert.deepEqual(parts.map((p) => p.body.length), [LIMIT, LIMIT])
    })

    it('one byte over the limit, with Content-Length: 413', async () => {
      await overLimit(['-H', 'Expect:', '--data-binary', `@${file('over.txt', LIMIT + 1)}`])
    })

    it('one byte over the limit, chunked: 413', async () => {
      await overLimit(['-H', 'Expect:', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${file('over.txt', LIMIT + 1)}`])
    })

    it('far over the limit (2 MiB), chunked and with Content-Length: 413, the answer arrives intact', async () => {
      const big = file('big.txt', 2 * 1024 * 1024)
      await overLimit(['-H', 'Expect:', '--data-binary', `@${big}`])
      await stopAll()
      await overLimit(['-H', 'Expect:', '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${big}`])
    })

    it('`Expect: 100-continue` with a declared length over the limit is refused up front: no 100, no body sent', async () => {
      const reply = await overLimit(
        ['-H', 'Expect: 100-continue', '--expect100-timeout', '5', '--data-binary', `@${file('over.txt', 64 * 1024)}`],
        '%{size_upload}',
      )
      assert.deepEqual(reply.interim, [])
      assert.equal(reply.written, '0', 'curl sent none of the body')
    })

    it('`Expect: 100-continue` within the limit: 100 Continue, then 204', async () => {
      const server = await startBus({boundary: B, maxMessageSize: LIMIT})
      const url = `${server.url()}/msgbus/big`
      const subscriber = await CurlStream.open(url)
      const reply = await curlReply(['-H', 'Expect: 100-continue', '--expect100-timeout', '5', '--data-binary', `@${file('ok.txt', LIMIT)}`, '-H', 'Content-Type: text/plain', url])
      assert.deepEqual(reply.interim, [100])
      assert.equal(reply.status, 204)
      await subscriber.waitParts(1)
    })
  })

  describe('multipart/form-data (curl -F)', () => {
    const text = 'hello from x.txt\n'
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(`\r\n--${B}\r\n`), Buffer.from(Array.from({length: 256}, (_, i) => 255 - i))])

    before(() => {
      writeFileSync(inTemp('x.txt'), text)
      writeFileSync(inTemp('y.png'), png)
    })

    it('two files: two messages in order with their own types and file names; Msgbus-Id and Msgbus-Subscribers are lists', async () => {
      const server = await startBus({boundary: B})
      const url = `${server.url()}/msgbus/form`
      const all = await CurlStream.open(url)
      const images = await CurlStream.open(`${url}?type=image/*`)
      const reply = await curlReply(['-F', `a=@${inTemp('x.txt')}`, '-F', `b=@${inTemp('y.png')}`, url])
      assert.equal(reply.status, 204)
      assert.match(reply.headers['msgbus-id'], /^\d+-\d+\s*,\s*\d+-\d+$/)
      assert.match(reply.headers['msgbus-subscribers'], /^1\s*,\s*2$/)
      const list = ids(reply)
      assertIncreasing(list)
      const parts = await all.waitParts(2)
      assert.equal(parts[0].headers['content-type'], 'text/plain; name="x.txt"')
      assert.equal(parts[0].body.toString(), text)
      assert.equal(parts[1].headers['content-type'], 'image/png; name="y.png"')
      assert.deepEqual(parts[1].body, png)
      assert.deepEqual(parts.map((p) => p.headers['message-id']), list)
      const [image] = await images.waitParts(1)
      assert.equal(image.headers['message-id'], list[1])
    })

    it('plain fields are text/plain; charset=utf-8, a `;type=` is kept, and From comes from Basic auth', async () => {
      const server = await startBus({boundary: B})
      const url = `${server.url()}/msgbus/form`
      const subscriber = await CurlStream.open(url)
      const reply = await curlReply(['-u', 'carol:pw', '-F', 'note=grüße', '-F', `c=@${inTemp('x.txt')};type=application/x-thing`, '-F', 'n=2', url])
      assert.equal(reply.status, 204)
      assert.equal(ids(reply).length, 3)
      const parts = await subscriber.waitParts(3)
      assert.deepEqual(
        parts.map((p) => [p.headers['content-type'], p.body.toString(), p.headers.from]),
        [
          ['text/plain; charset=utf-8', 'grüße', 'carol'],
          ['application/x-thing; name="x.txt"', text, 'carol'],
          ['text/plain; charset=utf-8', '2', 'carol'],
        ],
      )
    })

    it('a file name is carried as the type\'s name parameter, quoted; no name, no parameter', async () => {
      const server = await startBus({boundary: B})
      const url = `${server.url()}/msgbus/form`
      const subscriber = await CurlStream.open(url)
      const part = (disposition: string, type: string) => `--F\r\nContent-Disposition: form-data; ${disposition}\r\nContent-Type: ${type}\r\n\r\nbody\r\n`
      const form = [
        part('name="a"; filename="say \\"hi\\".txt"', 'text/plain'),
        // busboy hands a part's type over without its parameters: the part's file name is the one.
        part('name="b"; filename="new.png"', 'image/png; name="old.png"'),
        part('name="c"; filename=""', 'application/octet-stream'),
        // Beyond ASCII (as curl and browsers send it, UTF-8): RFC 2231's form, so the type stays ASCII.
        part('name="d"; filename="café (1).txt"', 'text/plain'),
      ].join('') + '--F--\r\n'
      const reply = await request(url, {method: 'POST', headers: {'Content-Type': 'multipart/form-data; boundary=F'}, body: Buffer.from(form)})
      assert.equal(reply.status, 204, reply.body.toString())
      const parts = await subscriber.waitParts(4)
      assert.deepEqual(
        parts.map((p) => p.headers['content-type']),
        ['text/plain; name="say \\"hi\\".txt"', 'image/png; name="new.png"', 'application/octet-stream', "text/plain; name*=UTF-8''caf%C3%A9%20%281%29.txt"],
      )
    })

    it('a field that is not text (no filename) arrives byte for byte', async () => {
      const server = await startBus({boundary: B})
      const url = `${server.url()}/msgbus/form`
      const subscriber = await CurlStream.open(url)
      const reply = await curlReply(['-F', `img=<${inTemp('y.png')};type=image/png`, '-F', 'utf=€ and ü', url])
      assert.equal(reply.status, 204)
      const parts = await subscriber.waitParts(2)
      assert.equal(parts[0].headers['content-type'], 'image/png')
      assert.deepEqual(parts[0].body, png)
      assert.equal(parts[1].body.toString(), '€ and ü')
    })

    it('a part over --max-message-size: 413, and none of the form is published', async () => {
      const server = await startBus({boundary: B, maxMessageSize: 1000})
      const url = `${server.url()}/msgbus/form`
      const subscriber = await CurlStream.open(url)
      writeFileSync(inTemp('exact.bin'), Buffer.alloc(1000, 'e'))
      writeFileSync(inTemp('over.bin'), Buffer.alloc(1001, 'o'))
      // The big part last: the first part was complete, yet is not published.
      assertError(await curlReply(['-F', `a=@${inTemp('x.txt')}`, '-F', `b=@${inTemp('over.bin')}`, url]), 413, /limit/)
      // A plain field over the limit too.
      assertError(await curlReply(['-F', 'a=small', '-F', `b=<${inTemp('over.bin')}`, url]), 413, /limit/)
      // A part (file or field) of exactly the limit is fine.
      const ok = await curlReply(['-F', `a=@${inTemp('exact.bin')}`, '-F', `b=<${inTemp('exact.bin')}`, '-F', 'c=done', url])
      assert.equal(ok.status, 204)
      await subscriber.waitParts(3)
      assert.deepEqual(subscriber.bodies(), ['e'.repeat(1000), 'e'.repeat(1000), 'done'])
    })

    it('a form over --max-request-size: 413, and none of it is published', async () => {
      const server = await startBus({boundary: B, maxMessageSize: 1000, maxRequestSize: 2500})
      const url = `${server.url()}/msgbus/form`
      const subscriber = await CurlStream.open(url)
      writeFileSync(inTemp('nine.bin'), Buffer.alloc(900, 'n'))
      const part = `@${inTemp('nine.bin')}`
      assertError(await curlReply(['-H', 'Expect:', '-F', `a=${part}`, '-F', `b=${part}`, '-F', `c=${part}`, url]), 413, /limit/)
      assert.equal((await curlPublish(url, 'after')).status, 204)
      await subscriber.waitParts(1)
      assert.deepEqual(subscriber.bodies(), ['after'])
    })
  })

  describe('HTTPS', () => {
    let certFile: string
    let keyFile: string
    let bothFile: string

    before(async () => {
      ;({certFile, keyFile} = await makeCertificate(inTemp()))
      bothFile = inTemp('both.pem')
      writeFileSync(bothFile, Buffer.concat([readFileSync(certFile), readFileSync(keyFile)]))
    })

    it('subscribe and publish over HTTPS with a certificate curl verifies (--cacert); HTTP and HTTPS share one bus', async () => {
      const server = await startBus({boundary: B, cert: readFileSync(certFile), key: readFileSync(keyFile)})
      const secure = `${server.url('https')}/msgbus/tls`
      assert.match(secure, /^https:\/\/127\.0\.0\.1:\d+\//)
      const subscriber = await CurlStream.open(secure, ['--cacert', certFile])
      const overTls = await curlPublish(secure, 'secret message', 'text/plain', ['--cacert', certFile, '-u', 'dave:pw'])
      assert.equal(overTls.status, 204)
      assert.match(overTls.headers.server, /^msgbus/)
      assert.equal((await curlPublish(`${server.url()}/msgbus/tls`, 'plain message')).status, 204)
      const parts = await subscriber.waitParts(2)
      assert.deepEqual(subscriber.bodies(), ['secret message', 'plain message'])
      assert.equal(parts[0].headers.from, 'dave')
      // Without trusting the certificate, curl refuses it: this is TLS with our certificate.
      const untrusted = await curl([secure, '-d', 'x', '-H', 'Content-Type: text/plain'])
      assert.equal(untrusted.code, 60, untrusted.stderr)
      // HTTPS errors are the same one-line errors.
      assertError(await curlReply(['--cacert', certFile, '-H', 'Content-Type:', '-d', 'x', secure]), 400, /Content-Type/)
    })

    it('one file holding both certificate and key (either order), with curl -k', async () => {
      for (const pem of [readFileSync(bothFile), Buffer.concat([readFileSync(keyFile), readFileSync(certFile)])]) {
        const server = await startBus({boundary: B, cert: pem})
        const url = `${server.url('https')}/msgbus/both`
        const subscriber = await CurlStream.open(url, ['-k'])
        assert.equal((await curlPublish(url, 'hi', 'text/plain', ['-k'])).status, 204)
        await subscriber.waitParts(1)
        assert.deepEqual(subscriber.bodies(), ['hi'])
        subscriber.kill()
        await stopAll()
      }
    })

    it('`msgbus serve -c both.pem` serves HTTPS beside HTTP', async () => {
      const serve = await ServeProcess.start(['-p', '0', '-P', '0', '-l', '127.0.0.1', '-c', bothFile])
      try {
        // start() waits for the HTTPS line too (-c); as it may come in a later write, this says so.
        await serve.logged(/listen HTTPS on/)

        const url = `https://127.0.0.1:${serve.port('HTTPS')}/msgbus/cli`
        const subscriber = await CurlStream.open(url, ['--cacert', certFile])
        assert.equal((await curlPublish(url, 'via cli', 'text/plain', ['--cacert', certFile])).status, 204)
        assert.equal((await curlPublish(`http://127.0.0.1:${serve.port('HTTP')}/msgbus/cli`, 'via http')).status, 204)
        await subscriber.waitParts(2)
        assert.deepEqual(subscriber.bodies(), ['via cli', 'via http'])
      } finally {
        await serve.stop()
      }
    })
  })
})
