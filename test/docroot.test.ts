// The document root: a real static file server, confined to its folder.
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {BusServer} from '../src/lib/index.js'
import {curl, portOf, RawClient, request, startBus, stopAll, type Reply} from './support/harness.js'

interface RawReply {
  status: number
  headers: Record<string, string>
  body: Buffer
  /** Every byte received, for checks that no body followed a HEAD or 304. */
  bytes: string
}

/**
 * One request on a raw socket, the target sent exactly as given (no
 * normalisation of `..`, no encoding), `Connection: close`; the whole answer.
 */
async function raw(server: BusServer, target: string | Buffer, method = 'GET', headers = ''): Promise<RawReply> {
  const client = await RawClient.open(portOf(server))
  client.socket.write(
    Buffer.concat([
      Buffer.from(`${method} `),
      Buffer.isBuffer(target) ? target : Buffer.from(target, 'utf8'),
      Buffer.from(` HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${headers}\r\n`),
    ]),
  )
  const text = await client.untilClosed(3000)
  const end = text.indexOf('\r\n\r\n')
  assert.ok(end > 0, `an HTTP answer to ${method} ${target}: ${JSON.stringify(text)}`)
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
  const parsed: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    parsed[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }

  return {
    status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)![1]),
    headers: parsed,
    body: client.data.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1')),
    bytes: text,
  }
}

/** An error answer: the status, a one-line `text/plain; charset=utf-8` body, and the server header. */
function assertError(reply: Reply | RawReply, status: number, what = ''): void {
  const headers = reply.headers as Record<string, string | string[] | undefined>
  assert.equal(reply.status, status, `${what}: expected ${status}, got ${reply.status} ${reply.body.toString()}`)
  assert.equal(headers['content-type'], 'text/plain; charset=utf-8', what)
  assert.match(reply.body.toString(), /^[^\r\n]+\n$/, `${what}: one line`)
  assert.equal(headers['content-length'], String(reply.body.length), what)
  assert.match(String(headers.server), /^msgbus/, what)
}

/** After whatever came before, the server still answers. */
async function assertAlive(server: BusServer): Promise<void> {
  const reply = await request(`${server.url()}/index.html`)
  assert.equal(reply.status, 200)
  assert.equal(reply.body.toString(), HOME)
}

const HOME = '<!doctype html><h1>home</h1>\n'
const SECRET = 'SECRET: the sibling folder\n'
const OUTSIDE = 'OUTSIDE: beside the root\n'
const TEXT = '0123456789abcdefghij\n'

let base: string
let www: string

describe('document root', function () {
  this.timeout(10000)

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'msgbus-docroot-'))
    www = join(base, 'www')
    const file = (name: string, content: string | Buffer) => writeFileSync(join(www, name), content)
    mkdirSync(www)
    // The sibling whose name starts with the root's: the 2007 server served /../www2/secret.
    mkdirSync(join(base, 'www2'))
    writeFileSync(join(base, 'www2', 'secret'), SECRET)
    writeFileSync(join(base, 'outside.txt'), OUTSIDE)
    file('index.html', HOME)
    mkdirSync(join(www, 'sub'))
    file('sub/index.html', '<h1>sub</h1>\n')
    file('sub/page.txt', 'sub page\n')
    mkdirSync(join(www, 'my dir'))
    file('my dir/index.html', '<h1>my dir</h1>\n')
    mkdirSync(join(www, 'empty'))
    file('notes.txt', TEXT)
    file('style.css', 'h1 {color: red}\n')
    file('app.js', 'console.log(1)\n')
    file('data.json', '{"a": 1}\n')
    file('logo.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 1, 2, 3]))
    file('page.htm', '<p>htm</p>\n')
    file('image.SVG', '<svg xmlns="http://www.w3.org/2000/svg"/>\n')
    file('README', 'no extension\n')
    file('Makefile', 'all:\n')
    file('a b.txt', 'a space\n')
    file('$(x);&.txt', 'shell characters\n')
    file("it's \"quoted\".txt", 'quotes\n')
    file('100%.txt', 'a percent sign\n')
    file('ünï.txt', 'utf-8 name\n')
    file('#hash.txt', 'a hash\n')
    file('?q.txt', 'a question mark\n')
    file('.hidden', 'dotfile\n')
    symlinkSync('../www2/secret', join(www, 'link'))
    symlinkSync('../www2', join(www, 'linkdir'))
    symlinkSync(join(base, 'outside.txt'), join(www, 'abslink'))
    symlinkSync('/', join(www, 'rootlink'))
    symlinkSync('index.html', join(www, 'inlink'))
    symlinkSync('sub', join(www, 'subalias'))
    // A folder named like the bus prefix must not shadow the bus.
    mkdirSync(join(www, 'msgbus'))
    file('msgbus/foo', 'not the bus\n')
  })

  after(() => rmSync(base, {recursive: true, force: true}))
  afterEach(stopAll)

  describe('serving', () => {
    let server: BusServer
    beforeEach(async () => {
      server = await startBus({docroot: www})
    })

    it('serves index.html for folders, / included', async () => {
      for (const [path, body] of [
        ['/', HOME],
        ['/sub/', '<h1>sub</h1>\n'],
        ['/my%20dir/', '<h1>my dir</h1>\n'],
        ['/subalias/', '<h1>sub</h1>\n'],
      ]) {
        const reply = await request(`${server.url()}${path}`)
        assert.equal(reply.status, 200, path)
        assert.equal(reply.body.toString(), body, path)
        assert.equal(reply.headers['content-type'], 'text/html; charset=utf-8', path)
        assert.match(String(reply.headers.server), /^msgbus/)
      }
    })

    it('a folder without its trailing slash: 301 to the slash, query kept; never to another site', async () => {
      for (const [target, location] of [
        ['/sub', '/sub/'],
        ['/sub?x=1&y=2', '/sub/?x=1&y=2'],
        ['/sub?a?b', '/sub/?a?b'],
        ['/my%20dir', '/my%20dir/'],
        ['/empty', '/empty/'],
        ['//sub', '/sub/'],
        ['///sub?x', '/sub/?x'],
      ]) {
        const reply = await raw(server, target)
        assertError(reply, 301, target)
        assert.equal(reply.headers.location, location, target)
      }
    })

    it('a folder without index.html is 404, never a listing', async () => {
      assertError(await request(`${server.url()}/empty/`), 404)
    })

    it('content types by extension; a name without one is application/octet-stream', async () => {
      for (const [path, type] of [
        ['/index.html', /^text\/html; charset=utf-8$/],
        ['/page.htm', /^text\/html; charset=utf-8$/],
        ['/notes.txt', /^text\/plain; charset=utf-8$/],
        ['/style.css', /^text\/css; charset=utf-8$/],
        ['/app.js', /^(text|application)\/javascript; charset=utf-8$/],
        ['/data.json', /^application\/json; charset=utf-8$/],
        ['/logo.png', /^image\/png$/],
        ['/image.SVG', /^image\/svg\+xml$/],
        ['/README', /^application\/octet-stream$/],
        ['/Makefile', /^application\/octet-stream$/],
      ] as const) {
        const reply = await request(`${server.url()}${path}`)
        assert.equal(reply.status, 200, path)
        assert.match(String(reply.headers['content-type']), type, path)
      }

      assert.deepEqual((await request(`${server.url()}/logo.png`)).body, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 1, 2, 3]))
    })

    it('names with spaces, quotes, shell characters, %, #, ? and UTF-8, percent-encoded or raw where HTTP allows', async () => {
      for (const [target, body] of [
        ['/a%20b.txt', 'a space\n'],
        ['/$(x);&.txt', 'shell characters\n'],
        ['/%24%28x%29%3B%26.txt', 'shell characters\n'],
        ["/it's%20%22quoted%22.txt", 'quotes\n'],
        ['/100%25.txt', 'a percent sign\n'],
        ['/%C3%BCn%C3%AF.txt', 'utf-8 name\n'],
        ['/%23hash.txt', 'a hash\n'],
        ['/%3Fq.txt', 'a question mark\n'],
        ['/inlink', HOME],
        ['/sub/page.txt', 'sub page\n'],
        ['/sub/%2e%2e/notes.txt', TEXT],
      ]) {
        const reply = await raw(server, target)
        assert.equal(reply.status, 200, target)
        assert.equal(reply.body.toString(), body, target)
      }

      // And as a curl user types them.
      const spaced = await curl([`${server.url()}/a%20b.txt`])
      assert.equal(spaced.stdout, 'a space\n')
      const shell = await curl(['-g', `${server.url()}/$(x);&.txt`])
      assert.equal(shell.stdout, 'shell characters\n')
    })

    it('HEAD: the headers GET gets, and no body', async () => {
      const get = await raw(server, '/notes.txt')
      const head = await raw(server, '/notes.txt', 'HEAD')
      assert.equal(head.status, 200)
      assert.ok(head.bytes.endsWith('\r\n\r\n'), 'nothing after the head')
      assert.equal(head.body.length, 0)
      for (const name of ['content-type', 'content-length', 'etag', 'last-modified', 'accept-ranges', 'server']) {
        assert.equal(head.headers[name], get.headers[name], name)
      }

      assert.equal(get.headers['content-length'], String(TEXT.length))
      const missing = await raw(server, '/missing.txt', 'HEAD')
      assert.equal(missing.status, 404)
      assert.ok(missing.bytes.endsWith('\r\n\r\n'), 'no body for HEAD, even on an error')
      assert.equal(missing.headers['content-type'], 'text/plain; charset=utf-8')
    })

    it('ETag and Last-Modified; 304 on If-None-Match and If-Modified-Since; a changed file is new', async () => {
      const path = join(www, 'changing.txt')
      writeFileSync(path, 'version one\n')
      const old = new Date('2020-01-02T03:04:05Z')
      utimesSync(path, old, old)
      const first = await raw(server, '/changing.txt')
      assert.equal(first.status, 200)
      const etag = first.headers.etag
      assert.match(etag, /^(W\/)?"[^"]+"$/)
      assert.equal(first.headers['last-modified'], old.toUTCString())

      const byEtag = await raw(server, '/changing.txt', 'GET', `If-None-Match: ${etag}\r\n`)
      assert.equal(byEtag.status, 304)
      assert.ok(byEtag.bytes.endsWith('\r\n\r\n'), 'no body on 304')
      assert.equal(byEtag.headers.etag, etag)
      assert.equal((await raw(server, '/changing.txt', 'GET', `If-None-Match: "other", ${etag}\r\n`)).status, 304)
      assert.equal((await raw(server, '/changing.txt', 'GET', 'If-None-Match: "other"\r\n')).status, 200)

      const byDate = await raw(server, '/changing.txt', 'GET', `If-Modified-Since: ${old.toUTCString()}\r\n`)
      assert.equal(byDate.status, 304)
      assert.equal((await raw(server, '/changing.txt', 'GET', `If-Modified-Since: ${new Date('2019-01-01').toUTCString()}\r\n`)).status, 200)

      writeFileSync(path, 'version two, longer\n')
      const later = new Date('2021-01-02T03:04:05Z')
      utimesSync(path, later, later)
      const changed = await raw(server, '/changing.txt', 'GET', `If-None-Match: ${etag}\r\n`)
      assert.equal(changed.status, 200)
      assert.equal(changed.body.toString(), 'version two, longer\n')
      assert.notEqual(changed.headers.etag, etag)
      assert.equal((await raw(server, '/changing.txt', 'GET', `If-Modified-Since: ${old.toUTCString()}\r\n`)).status, 200)
    })

    it('Range: 206 with Content-Range for a satisfiable range, 416 with `bytes */size` for one past the end', async () => {
      const size = TEXT.length
      for (const [range, start, end] of [
        ['bytes=0-4', 0, 4],
        ['bytes=10-', 10, size - 1],
        ['bytes=-3', size - 3, size - 1],
        ['bytes=5-1000', 5, size - 1],
      ] as const) {
        const reply = await raw(server, '/notes.txt', 'GET', `Range: ${range}\r\n`)
        assert.equal(reply.status, 206, range)
        assert.equal(reply.headers['content-range'], `bytes ${start}-${end}/${size}`, range)
        assert.equal(reply.body.toString(), TEXT.slice(start, end + 1), range)
        assert.equal(reply.headers['content-length'], String(end - start + 1), range)
      }

      const unsatisfiable = await raw(server, '/notes.txt', 'GET', 'Range: bytes=1000-2000\r\n')
      assertError(unsatisfiable, 416, 'past the end')
      assert.equal(unsatisfiable.headers['content-range'], `bytes */${size}`)
      // A Range header that is not a byte range is ignored: the whole file.
      const ignored = await raw(server, '/notes.txt', 'GET', 'Range: lines=1-2\r\n')
      assert.equal(ignored.status, 200)
      assert.equal(ignored.body.toString(), TEXT)
      await assertAlive(server)
    })

    it('POST, PUT, DELETE and PATCH on a document: 405 with Allow; OPTIONS: 204 with Allow', async () => {
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const reply = await raw(server, '/index.html', method, `Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(1000)}`)
        assertError(reply, 405, method)
        assert.equal(reply.headers.allow, 'GET, HEAD, OPTIONS', method)
        await assertAlive(server)
      }

      const options = await request(`${server.url()}/index.html`, {method: 'OPTIONS'})
      assert.equal(options.status, 204)
      assert.equal(options.headers.allow, 'GET, HEAD, OPTIONS')
      assert.match(String(options.headers.server), /^msgbus/)
    })

    it('bus URLs are never documents, even with a folder named msgbus in the root', async () => {
      const client = await RawClient.open(portOf(server), 'GET /msgbus/foo HTTP/1.1\r\nHost: x\r\n\r\n')
      const head = await client.until((text) => text.includes('\r\n\r\n'))
      assert.match(head, /^HTTP\/1\.1 200 OK\r\n/)
      assert.match(head, /\r\nContent-Type: multipart\/x-mixed-replace;boundary=/)
      assert.ok(!head.includes('not the bus'))
      client.close()
      const redirect = await raw(server, '/msgbus')
      assertError(redirect, 308)
      assert.equal(redirect.headers.location, '/msgbus/')
    })
  })

  describe('confinement', () => {
    let server: BusServer
    beforeEach(async () => {
      server = await startBus({docroot: www})
    })

    // Every request below is sent as is, on a raw socket: no client normalises it.
    const cases: Array<[string, number, string]> = [
      ['/../www2/secret', 403, 'the sibling folder whose name starts with the root’s'],
      ['/../www2/', 403, 'the sibling folder itself'],
      ['/../www/index.html', 403, 'out and back in'],
      ['/../outside.txt', 403, 'the parent folder'],
      ['/../../../../../../etc/passwd', 403, 'far up'],
      ['/sub/../../www2/secret', 403, 'down then up past the root'],
      ['/..', 403, 'the parent'],
      ['/%2e%2e/www2/secret', 403, 'encoded dots'],
      ['/%2E%2E%2Fwww2%2Fsecret', 403, 'encoded dots and slashes, upper case'],
      ['/%2e%2e%2fwww2/secret', 403, 'encoded dots and slash'],
      ['/..%2fwww2/secret', 403, 'an encoded slash after raw dots'],
      ['/.%2e/www2/secret', 403, 'half encoded'],
      ['/sub/%2e%2e/%2e%2e/www2/secret', 403, 'encoded, down then up'],
      ['/link', 403, 'a relative symlink to a file outside'],
      ['/linkdir/secret', 403, 'through a symlinked folder outside'],
      ['/linkdir/', 403, 'a symlinked folder outside'],
      ['/abslink', 403, 'an absolute symlink outside'],
      ['/rootlink/etc/passwd', 403, 'a symlink to /'],
      ['/missing.txt', 404, 'a missing file'],
      ['/missing', 404, 'a missing name without an extension'],
      ['/sub/missing/deeper.txt', 404, 'a missing folder'],
      ['/README/', 404, 'a file as a folder'],
      ['/README/x', 404, 'a file as a folder, deeper'],
      ['/' + 'a'.repeat(300), 404, 'a name too long for the file system'],
      ['/.hidden', 404, 'a dotfile'],
      ['/%zz', 400, 'bad percent-encoding'],
      ['/a%2', 400, 'truncated percent-encoding'],
      ['/%', 400, 'a lone percent sign'],
      ['/%C3%28', 400, 'invalid UTF-8'],
      ['/%ff.txt', 400, 'a byte that is not UTF-8'],
      ['/notes.txt%00.html', 400, 'an encoded NUL'],
    ]

    for (const [target, status, why] of cases) {
      it(`${target.length > 60 ? target.slice(0, 40) + '…' : target} (${why}): ${status}, one line, and the server still answers`, async () => {
        for (const method of ['GET', 'HEAD']) {
          const reply = await raw(server, target, method)
          if (method === 'GET') assertError(reply, status, target)
          else {
            assert.equal(reply.status, status, `HEAD ${target}`)
            assert.equal(reply.body.length, 0)
          }

          assert.ok(!reply.bytes.includes('SECRET') && !reply.bytes.includes('OUTSIDE') && !reply.bytes.includes('root:'), 'nothing from outside leaks')
        }

        await assertAlive(server)
      })
    }

    it('curl --path-as-is /../www2/secret is refused; plain curl normalises it to /www2/secret, which is not there', async () => {
      const asIs = await curl(['-i', '--path-as-is', `${server.url()}/../www2/secret`])
      assert.match(asIs.stdout, /^HTTP\/1\.1 403 /)
      assert.ok(!asIs.stdout.includes('SECRET'))
      const normalised = await curl(['-i', `${server.url()}/../www2/secret`])
      assert.match(normalised.stdout, /^HTTP\/1\.1 404 /)
      assert.ok(!normalised.stdout.includes('SECRET'))
      await assertAlive(server)
    })

    it('a raw byte that is not valid in a request target: 400, one line, and the server still answers', async () => {
      const reply = await raw(server, Buffer.from([0x2f, 0x7f, 0x2e, 0x74, 0x78, 0x74]))
      assertError(reply, 400, 'DEL in the target')
      await assertAlive(server)
    })

    it('a symlink inside the root that stays inside is served', async () => {
      const reply = await raw(server, '/subalias/page.txt')
      assert.equal(reply.status, 200)
      assert.equal(reply.body.toString(), 'sub page\n')
    })
  })

  describe('without a document root', () => {
    it('any path that is not a bus URL is 404, whatever the method', async () => {
      const server = await startBus()
      for (const path of ['/', '/index.html', '/favicon.ico', '/msgbusx', '/msgbus2/foo', '/MSGBUS/foo', '/../etc/passwd', '/%zz']) {
        for (const method of ['GET', 'POST']) {
          const reply = await raw(server, path, method, method === 'POST' ? 'Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi' : '')
          assertError(reply, 404, `${method} ${path}`)
        }

        const head = await raw(server, path, 'HEAD')
        assert.equal(head.status, 404)
        assert.ok(head.bytes.endsWith('\r\n\r\n'))
      }

      // The bus itself still works.
      const published = await request(`${server.url()}/msgbus/foo`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: 'x'})
      assert.equal(published.status, 204)
    })
  })

  describe('with --secret', () => {
    it('documents need the secret too', async () => {
      const server = await startBus({docroot: www, secret: 's3cret'})
      const refused = await request(`${server.url()}/index.html`)
      assertError(refused, 401)
      assert.equal(refused.headers['www-authenticate'], 'Basic realm="msgbus"')
      const wrong = await request(`${server.url()}/index.html`, {headers: {Authorization: `Basic ${Buffer.from('a:nope').toString('base64')}`}})
      assertError(wrong, 401)
      const allowed = await request(`${server.url()}/index.html`, {headers: {Authorization: `Basic ${Buffer.from('a:s3cret').toString('base64')}`}})
      assert.equal(allowed.status, 200)
      assert.equal(allowed.body.toString(), HOME)
      // Confinement is not a secret's business: outside stays outside.
      const outside = await raw(server, '/../www2/secret', 'GET', `Authorization: Basic ${Buffer.from('a:s3cret').toString('base64')}\r\n`)
      assertError(outside, 403)
    })
  })
})
