// The stream formats (multipart, SSE, NDJSON, raw) and the viewer page:
// how a subscriber picks one, and the exact bytes of each, over raw sockets.
import assert from 'node:assert/strict'
import {CurlStream} from './support/curl-stream.js'
import {dechunk, msgbus, portOf, publish, RawClient, request, run, ServeProcess, startBus, stopAll, until} from './support/harness.js'

const PNG_HEAD = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff])
const SSE_OPEN = 'retry: 2000\n: msgbus stream\n\n'
/** An SSE stream's first bytes: the opening, then the id its messages follow (for EventSource's Last-Event-ID), the newest when it starts live. */
const sseOpen = (server: {bus: {log: {newest: string}}}): string => `${SSE_OPEN}id: ${server.bus.log.newest}\n\n`

function get(path: string, headers: Record<string, string> = {}, version = '1.1'): string {
  const lines = Object.entries({Host: 'x', ...headers}).map(([name, value]) => `${name}: ${value}\r\n`)
  return `GET ${path} HTTP/${version}\r\n${lines.join('')}\r\n`
}

function headOf(text: string): string[] {
  return text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n')
}

/** The body so far of a chunked response, as UTF-8. */
function streamed(client: RawClient): string {
  const bytes = client.data
  const start = bytes.indexOf('\r\n\r\n') + 4
  return dechunk(bytes.subarray(start)).payload.toString('utf8')
}

/** Waits until the body so far passes `test`; returns it. */
async function streamedUntil(client: RawClient, test: (body: string) => boolean, what: string): Promise<string> {
  await client.until(() => test(streamed(client)), 5000, what)
  return streamed(client)
}

/** What `msgbus dump --json` and the SSE/NDJSON streams carry for a message, key for key and in order. */
function jsonOf(id: string, time: string, fields: {channel: string; type: string; sender: string | null; body: Buffer}) {
  const text = fields.type.startsWith('text/')
  return {
    id,
    channel: fields.channel,
    type: fields.type,
    sender: fields.sender,
    time,
    length: fields.body.length,
    body: text ? fields.body.toString('utf8') : fields.body.toString('base64'),
    ...(text ? {} : {encoding: 'base64'}),
  }
}

describe('stream formats', () => {
  afterEach(async () => {
    CurlStream.killAll()
    await stopAll()
  })

  it('SSE (?format=sse): the head, a retry and a comment at once, then id, event and one JSON data line per message', async () => {
    const server = await startBus()
    const open = sseOpen(server)
    const client = await RawClient.open(portOf(server), get('/msgbus/foo?format=sse'))
    const opened = await streamedUntil(client, (body) => body === open, 'the SSE opening')
    assert.equal(opened, open)
    const head = headOf(client.text())
    assert.equal(head[0], 'HTTP/1.1 200 OK')
    for (const line of ['Content-Type: text/event-stream; charset=utf-8', 'Cache-Control: no-cache', 'X-Accel-Buffering: no', 'Transfer-Encoding: chunked']) {
      assert.ok(head.includes(line), `${line} in ${head.join(' | ')}`)
    }

    const text = await publish(server, 'foo', 'hé\nllo', 'text/plain; charset=utf-8', {Authorization: `Basic ${Buffer.from('alice:x').toString('base64')}`})
    const image = await publish(server, 'foo', PNG_HEAD, 'image/png')
    const events = (await streamedUntil(client, (body) => body.split('\n\n').length >= 5, 'two events')).slice(open.length).split('\n\n')
    assert.equal(events.length, 3)
    assert.equal(events[2], '')
    const ids = [text.headers['msgbus-id'], image.headers['msgbus-id']] as string[]
    for (const [i, event] of events.slice(0, 2).entries()) {
      const lines = event.split('\n')
      assert.equal(lines.length, 3, `one data line: ${JSON.stringify(event)}`)
      assert.equal(lines[0], `id: ${ids[i]}`)
      assert.equal(lines[1], 'event: message')
      assert.ok(lines[2].startsWith('data: {'))
    }

    const first = JSON.parse(events[0].split('\n')[2].slice(6))
    assert.deepEqual(first, jsonOf(ids[0], first.time, {channel: 'foo', type: 'text/plain; charset=utf-8', sender: 'alice', body: Buffer.from('hé\nllo')}))
    assert.deepEqual(Object.keys(first), ['id', 'channel', 'type', 'sender', 'time', 'length', 'body'])
    assert.ok(Math.abs(Date.parse(first.time) - Number(ids[0].split('-')[0])) < 1000)
    const second = JSON.parse(events[1].split('\n')[2].slice(6))
    assert.deepEqual(second, jsonOf(ids[1], second.time, {channel: 'foo', type: 'image/png', sender: null, body: PNG_HEAD}))
    assert.deepEqual(Buffer.from(second.body, 'base64'), PNG_HEAD)
  })

  it('Accept picks the format: text/event-stream, application/x-ndjson, application/ndjson; */* and none keep multipart', async () => {
    const server = await startBus()
    const port = portOf(server)
    const cases: Array<[Record<string, string>, string]> = [
      [{Accept: 'text/event-stream'}, 'text/event-stream; charset=utf-8'],
      [{Accept: 'application/x-ndjson'}, 'application/x-ndjson'],
      [{Accept: 'application/ndjson'}, 'application/x-ndjson'],
      [{Accept: '*/*'}, 'multipart/x-mixed-replace;boundary='],
      [{}, 'multipart/x-mixed-replace;boundary='],
      // What an <img> asks for: an MJPEG stream keeps working.
      [{Accept: 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8', 'Sec-Fetch-Dest': 'image'}, 'multipart/x-mixed-replace;boundary='],
      // fetch() with no Accept of its own sends */*.
      [{Accept: '*/*', 'Sec-Fetch-Dest': 'empty'}, 'multipart/x-mixed-replace;boundary='],
      [{Accept: 'text/event-stream;q=0.5, application/x-ndjson'}, 'application/x-ndjson'],
    ]
    for (const [headers, type] of cases) {
      const client = await RawClient.open(port, get('/msgbus/foo', headers))
      const text = await client.until((t) => t.includes('\r\n\r\n'))
      const line = headOf(text).find((l) => l.startsWith('Content-Type: '))
      assert.ok(line?.startsWith(`Content-Type: ${type}`), `${JSON.stringify(headers)}: ${line}`)
      assert.ok(headOf(text).includes('Vary: Accept, Sec-Fetch-Dest'))
      client.close()
    }
  })

  it('<img> (Sec-Fetch-Dest: image): multipart whose parts are the bodies, each followed at once by the next part\'s empty head', async () => {
    const server = await startBus({boundary: 'B'})
    const client = await RawClient.open(portOf(server), get('/msgbus/cam', {Accept: 'image/avif,image/webp,*/*;q=0.8', 'Sec-Fetch-Dest': 'image'}))
    assert.equal(await streamedUntil(client, (body) => body.length > 0, 'the opening'), '--B\r\n\r\n')
    assert.ok(headOf(client.text()).includes('Content-Type: multipart/x-mixed-replace;boundary=B'))
    await publish(server, 'cam', PNG_HEAD, 'image/png')
    await publish(server, 'cam', 'second', 'image/jpeg')
    const expected = Buffer.concat([Buffer.from('--B\r\n\r\n'), PNG_HEAD, Buffer.from('\r\n--B\r\n\r\nsecond\r\n--B\r\n\r\n')])
    await client.until(() => dechunk(client.data.subarray(client.data.indexOf('\r\n\r\n') + 4)).payload.length >= expected.length)
    assert.deepEqual(dechunk(client.data.subarray(client.data.indexOf('\r\n\r\n') + 4)).payload, expected)
  })

  it('NDJSON: one JSON object a line, the same objects as the SSE data', async () => {
    const server = await startBus()
    const ndjson = await RawClient.open(portOf(server), get('/msgbus/foo?format=ndjson'))
    const open = sseOpen(server)
    const sse = await RawClient.open(portOf(server), get('/msgbus/foo', {Accept: 'text/event-stream'}))
    await streamedUntil(sse, (body) => body === open, 'the SSE opening')
    await ndjson.until((t) => t.includes('\r\n\r\n'))
    for (const body of ['one', '{"a":1}', '']) await publish(server, 'foo', body, body.startsWith('{') ? 'application/json' : 'text/plain')
    const lines = (await streamedUntil(ndjson, (body) => body.split('\n').length === 4, 'three lines')).split('\n')
    assert.equal(lines[3], '')
    const objects = lines.slice(0, 3).map((line) => JSON.parse(line))
    assert.deepEqual(objects.map((o) => o.body), ['one', '{"a":1}', ''])
    const events = (await streamedUntil(sse, (body) => body.split('\n\n').length === 6, 'three events')).slice(open.length).split('\n\n')
    assert.deepEqual(events.slice(0, 3).map((event) => JSON.parse(event.split('\n')[2].slice(6))), objects)
  })

  it('raw: bodies alone, a newline after each unless it ends in one; filters apply as to every format', async () => {
    const server = await startBus()
    const client = await RawClient.open(portOf(server), get('/msgbus/logs?format=raw&type=text/*'))
    const head = headOf(await client.until((t) => t.includes('\r\n\r\n')))
    assert.ok(head.includes('Content-Type: text/plain; charset=utf-8'))
    await publish(server, 'logs', 'first')
    await publish(server, 'logs', PNG_HEAD, 'image/png')
    await publish(server, 'logs', 'second\n')
    await publish(server, 'logs', '')
    await publish(server, 'logs', 'third')
    assert.equal(await streamedUntil(client, (body) => body.endsWith('third\n'), 'the last body'), 'first\nsecond\n\nthird\n')
  })

  it('curl -sN ...?format=raw reads like tail -f, and curl ...?format=ndjson feeds jq', async () => {
    const server = await startBus()
    const raw = CurlStream.start(`${server.url()}/msgbus/logs?format=raw`)
    const ndjson = CurlStream.start(`${server.url()}/msgbus/logs`, ['-H', 'Accept: application/x-ndjson'])
    // Both are live once the server counts them.
    await until(() => server.bus.subscriberCount >= 2, 'curl subscriptions live')

    await publish(server, 'logs', 'disk full')
    await publish(server, 'logs', 'disk fine\n')
    await raw.until(() => raw.data.toString() === 'disk full\ndisk fine\n', 'two lines')
    await ndjson.until(() => ndjson.data.toString().split('\n').length === 3, 'two JSON lines')
    const jq = await run('jq', ['-r', '.body'], {input: ndjson.data})
    assert.equal(jq.stdout, 'disk full\ndisk fine\n\n')
  })

  it('HTTP/1.0 SSE: no chunking, the connection closes at shutdown', async () => {
    const server = await startBus()
    const client = await RawClient.open(portOf(server), get('/msgbus/foo?format=sse', {}, '1.0'))
    await client.until((t) => t.endsWith(`\r\n\r\n${sseOpen(server)}`))
    const head = headOf(client.text())
    assert.ok(head.includes('Connection: close'))
    assert.ok(!head.some((line) => /^transfer-encoding/i.test(line)))
    const reply = await publish(server, 'foo', 'x')
    await client.until((t) => t.includes(`id: ${reply.headers['msgbus-id']}\nevent: message\ndata: {`) && t.endsWith('}\n\n'))
    await server.stop()
    await client.untilClosed()
  })

  it('HTTP/1.1 shutdown ends SSE, NDJSON and raw streams with the last chunk', async () => {
    const server = await startBus()
    const clients = await Promise.all(['sse', 'ndjson', 'raw'].map((format) => RawClient.open(portOf(server), get(`/msgbus/foo?format=${format}`))))
    for (const client of clients) await client.until((t) => t.includes('\r\n\r\n'))
    await publish(server, 'foo', 'last')
    for (const client of clients) await streamedUntil(client, (body) => body.includes('last'), 'the message')
    await server.stop()
    for (const client of clients) {
      const text = await client.untilClosed()
      assert.ok(text.endsWith('\r\n0\r\n\r\n'), JSON.stringify(text.slice(-40)))
      assert.equal(dechunk(client.data.subarray(client.data.indexOf('\r\n\r\n') + 4)).ended, true)
    }
  })

  it('one message reaches subscribers of every format on the channel with the same id', async () => {
    const server = await startBus()
    const port = portOf(server)
    const multipart = await RawClient.open(port, get('/msgbus/foo'))
    const sse = await RawClient.open(port, get('/msgbus/foo?format=sse'))
    const ndjson = await RawClient.open(port, get('/msgbus/?format=ndjson'))
    const raw = await RawClient.open(port, get('/msgbus/foo?format=raw'))
    for (const client of [multipart, sse, ndjson, raw]) await client.until((t) => t.includes('\r\n\r\n'))
    const reply = await publish(server, 'foo', 'everyone')
    assert.equal(reply.headers['msgbus-subscribers'], '4')
    const id = reply.headers['msgbus-id'] as string
    await streamedUntil(multipart, (body) => body.includes(`Message-ID: ${id}\r\n\r\neveryone\r\n`), 'the part')
    await streamedUntil(sse, (body) => body.includes(`id: ${id}\n`), 'the event')
    // The line may still be on its way (a subscriber's socket is written after the answer to the publish).
    await streamedUntil(ndjson, (body) => body.endsWith('\n') && JSON.parse(body).id === id, 'the line')
    await streamedUntil(raw, (body) => body === 'everyone\n', 'the body')
  })

  it('SSE heartbeats: a comment every --heartbeat seconds on SSE streams, nothing on the others', async () => {
    const server = await startBus({heartbeat: 0.2})
    const sse = await RawClient.open(portOf(server), get('/msgbus/foo?format=sse'))
    const ndjson = await RawClient.open(portOf(server), get('/msgbus/foo?format=ndjson'))
    const body = await streamedUntil(sse, (text) => text.split(': heartbeat\n\n').length >= 3, 'two heartbeats')
    assert.equal(body, `${sseOpen(server)}: heartbeat\n\n: heartbeat\n\n`.slice(0, body.length))
    assert.equal(streamed(ndjson), '')
  })

  it('Last-Event-ID and ?last_event_id= are accepted when they are message ids, 400 otherwise', async () => {
    const server = await startBus()
    // An id from before this server started: older than anything it keeps, so the stream opens with a gap.
    const gap = `${SSE_OPEN}id: ${server.bus.log.horizon}\n\nevent: gap\ndata: {"event":"gap","reason":"expired","after":"1795755609293-4","from":"${server.bus.log.horizon}"}\n\n`
    const ok = await RawClient.open(portOf(server), get('/msgbus/foo?format=sse', {'Last-Event-ID': '1795755609293-4'}))
    await streamedUntil(ok, (body) => body === gap, 'the stream')
    const okQuery = await RawClient.open(portOf(server), get('/msgbus/foo?format=sse&last_event_id=1795755609293-4'))
    await streamedUntil(okQuery, (body) => body === gap, 'the stream')
    for (const target of ['/msgbus/foo?format=sse&last_event_id=yesterday']) {
      const reply = await request(`${server.url()}${target}`)
      assert.equal(reply.status, 400)
      assert.match(reply.body.toString(), /^Last-Event-ID "yesterday" is not a message id/)
    }

    const header = await request(`${server.url()}/msgbus/foo`, {headers: {Accept: 'text/event-stream', 'Last-Event-ID': 'abc'}})
    assert.equal(header.status, 400)
    assert.equal(server.bus.subscriberCount, 2)
  })

  it('an unknown ?format= is 400 and an Accept no format matches is 406, each with a one-line reason', async () => {
    const server = await startBus()
    const unknown = await request(`${server.url()}/msgbus/foo?format=xml`)
    assert.equal(unknown.status, 400)
    assert.equal(unknown.body.toString(), 'unknown format "xml" (known: multipart, sse, ndjson, raw, html)\n')
    const refused = await request(`${server.url()}/msgbus/foo`, {headers: {Accept: 'application/json'}})
    assert.equal(refused.status, 406)
    assert.match(refused.body.toString(), /^no stream format matches Accept: application\/json \(formats: multipart\/x-mixed-replace, text\/event-stream/)
    assert.equal(server.bus.subscriberCount, 0)
  })

  it('HEAD tells the headers of the format asked for, without subscribing', async () => {
    const server = await startBus()
    const reply = await request(`${server.url()}/msgbus/foo?format=ndjson`, {method: 'HEAD'})
    assert.equal(reply.status, 200)
    assert.equal(reply.headers['content-type'], 'application/x-ndjson')
    assert.equal(server.bus.subscriberCount, 0)
  })
})

describe('the sender filter in every format', () => {
  afterEach(stopAll)

  it('a message without a sender is the empty name: sender=* lets it through, sender=alice or a* does not (multipart, SSE, NDJSON, raw) @slow', async () => {
    const server = await startBus()
    const alice = {Authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}`}
    const cases: Array<[string, string[]]> = [
      ['sender=*', ['from alice', 'anonymous']],
      ['sender=%2A&type=%2A', ['from alice', 'anonymous']],
      ['sender=alice', ['from alice']],
      ['sender=a*', ['from alice']],
      ['sender=*,!alice', ['anonymous']],
    ]
    const clients: Array<[string, string, string[], RawClient]> = []
    for (const format of ['multipart', 'sse', 'ndjson', 'raw']) {
      for (const [query, want] of cases) {
        clients.push([format, query, want, await RawClient.open(portOf(server), get(`/msgbus/who?format=${format}&${query}`))])
      }
    }
    await streamedUntil(clients[0][3], () => server.counters().subscribers === clients.length, 'every subscription')
    assert.equal((await publish(server, 'who', 'from alice', 'text/plain', alice)).status, 204)
    assert.equal((await publish(server, 'who', 'anonymous', 'text/plain')).status, 204)
    // A last message every subscription takes, so that what came before it has come.
    assert.equal((await publish(server, 'who', 'end', 'text/plain', alice)).status, 204)
    for (const [format, query, want, client] of clients) {
      if (query === 'sender=*,!alice') continue
      const body = await streamedUntil(client, (text) => text.includes('end'), `${format} ?${query}: the last message`)
      const got = ['from alice', 'anonymous'].filter((text) => body.includes(text))
      assert.deepEqual(got, want, `${format} ?${query}`)
    }
    for (const [format, query, , client] of clients.filter(([, query]) => query === 'sender=*,!alice')) {
      const body = await streamedUntil(client, (text) => text.includes('anonymous'), `${format} ?${query}`)
      assert.ok(!body.includes('from alice'), `${format} ?${query}: ${body}`)
      client.close()
    }
  })
})

describe('the viewer page', () => {
  afterEach(stopAll)

  const navigation = {
    Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8',
    'Sec-Fetch-Dest': 'document',
    'Sec-Fetch-Mode': 'navigate',
  }

  it('a browser navigating to a bus URL gets the page, with a CSP that confines it to this origin', async () => {
    const server = await startBus()
    const reply = await request(`${server.url()}/msgbus/foo?type=text/*`, {headers: navigation})
    assert.equal(reply.status, 200)
    assert.equal(reply.headers['content-type'], 'text/html; charset=utf-8')
    assert.match(reply.body.toString(), /^<!doctype html>/i)
    assert.match(reply.body.toString(), /EventSource/)
    const csp = String(reply.headers['content-security-policy'])
    assert.match(csp, /default-src 'none'/)
    assert.match(csp, /connect-src 'self'/)
    assert.equal(reply.headers.vary, 'Accept, Sec-Fetch-Dest')
    assert.equal(server.bus.subscriberCount, 0, 'the page is not a subscription')
  })

  it('?format=html asks for the page; a load that renders as a document never gets multipart, even when it asks', async () => {
    const server = await startBus()
    const page = await request(`${server.url()}/msgbus/foo?format=html`)
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8')
    // A tab, a frame, an embed, or a browser without Fetch Metadata that asks for HTML:
    // each would render the parts as pages of this origin.
    const loads: Array<Record<string, string>> = [
      navigation,
      {Accept: '*/*', 'Sec-Fetch-Dest': 'iframe'},
      {Accept: '*/*', 'Sec-Fetch-Dest': 'frame'},
      {Accept: '*/*', 'Sec-Fetch-Dest': 'embed'},
      {Accept: '*/*', 'Sec-Fetch-Dest': 'object'},
      {Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'},
    ]
    for (const headers of loads) {
      const reply = await request(`${server.url()}/msgbus/foo?format=multipart`, {headers})
      assert.equal(reply.status, 200, JSON.stringify(headers))
      assert.equal(reply.headers['content-type'], 'text/html; charset=utf-8', JSON.stringify(headers))
      assert.match(String(reply.headers['content-security-policy']), /frame-ancestors 'self'/)
      assert.equal(reply.headers['x-frame-options'], 'SAMEORIGIN')
    }

    assert.equal(server.bus.subscriberCount, 0, 'no load became a subscription')
    // Asked for by name, the text formats are given: no browser renders them as a page.
    for (const [format, type] of [['raw', 'text/plain; charset=utf-8'], ['sse', 'text/event-stream; charset=utf-8'], ['ndjson', 'application/x-ndjson']]) {
      const client = await RawClient.open(portOf(server), get(`/msgbus/foo?format=${format}`, navigation))
      const head = headOf(await client.until((t) => t.includes('\r\n\r\n')))
      assert.ok(head.includes(`Content-Type: ${type}`), `${format}: ${head.join(' | ')}`)
      client.close()
    }
  })

  it('every stream forbids rendering and framing: sandbox, frame-ancestors none, nosniff, X-Frame-Options DENY', async () => {
    const server = await startBus()
    for (const [headers, format] of [
      [{}, 'multipart'],
      [{Accept: 'image/*,*/*;q=0.8', 'Sec-Fetch-Dest': 'image'}, 'multipart'],
      [{}, 'sse'],
      [{}, 'ndjson'],
      [navigation, 'raw'],
    ] as const) {
      const client = await RawClient.open(portOf(server), get(`/msgbus/foo?format=${format}`, headers))
      const head = headOf(await client.until((t) => t.includes('\r\n\r\n')))
      for (const line of ["Content-Security-Policy: sandbox; frame-ancestors 'none'", 'X-Content-Type-Options: nosniff', 'X-Frame-Options: DENY']) {
        assert.ok(head.includes(line), `${format} ${JSON.stringify(headers)}: no ${line}`)
      }
      client.close()
    }

    const head = await request(`${server.url()}/msgbus/foo`, {method: 'HEAD'})
    assert.equal(head.headers['content-security-policy'], "sandbox; frame-ancestors 'none'")
  })
})

describe('CORS (serve --cors)', () => {
  afterEach(stopAll)

  it('without --cors no response carries CORS headers, and no page of another origin publishes', async () => {
    const server = await startBus()
    const reply = await publish(server, 'foo', 'x', 'text/plain', {Origin: 'https://app.example'})
    assert.equal(reply.status, 403)
    assert.equal(reply.body.toString(), 'a page of https://app.example may not publish here (cross-origin; see serve --cors)\n')
    assert.equal(reply.headers['access-control-allow-origin'], undefined)
    const subscription = await request(`${server.url()}/msgbus/foo`, {method: 'HEAD', headers: {Origin: 'https://app.example'}})
    assert.equal(subscription.headers['access-control-allow-origin'], undefined)
    assert.equal(server.counters().published, 0)
  })

  it('a forged publish is told apart by Origin or Fetch Metadata; curl, the server\'s own pages and typed URLs are not', async () => {
    const server = await startBus()
    const own = server.url()
    const cases: Array<[Record<string, string>, number]> = [
      [{}, 204],
      [{Origin: own}, 204],
      [{Origin: own, 'Sec-Fetch-Site': 'same-origin'}, 204],
      // Behind a proxy the Host may differ from what the page sees; the browser's own word is enough.
      [{Origin: 'https://bus.example', 'Sec-Fetch-Site': 'same-origin'}, 204],
      [{'Sec-Fetch-Site': 'none'}, 204],
      [{Origin: 'null'}, 403],
      [{Origin: 'http://127.0.0.1:1'}, 403],
      [{Origin: own, 'Sec-Fetch-Site': 'cross-site'}, 403],
      [{'Sec-Fetch-Site': 'same-site'}, 403],
    ]
    for (const [headers, status] of cases) {
      const reply = await publish(server, 'foo', 'x', 'text/plain', headers)
      assert.equal(reply.status, status, `${JSON.stringify(headers)}: ${reply.body}`)
    }

    assert.equal(server.counters().published, 5)
  })

  it('a forged publish is refused before any password is checked (--secret): no 401, no login failure counted', async () => {
    const server = await startBus({secret: 's3cret', maxLoginFailures: 2})
    const auth = {Authorization: `Basic ${Buffer.from('alice:wrong').toString('base64')}`}
    for (let i = 0; i < 5; i++) {
      const forged = await publish(server, 'inbox', 'x', 'text/plain', {...auth, Origin: 'https://evil.example'})
      assert.equal(forged.status, 403)
    }

    const right = {Authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}`}
    assert.equal((await publish(server, 'inbox', 'x', 'text/plain', right)).status, 204)
  })

  it('a named origin: preflight, credentials, exposed publish headers, and the stream', async () => {
    const server = await startBus({cors: ['https://app.example']})
    const preflight = await request(`${server.url()}/msgbus/foo`, {
      method: 'OPTIONS',
      headers: {Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type'},
    })
    assert.equal(preflight.status, 204)
    assert.equal(preflight.headers['access-control-allow-origin'], 'https://app.example')
    assert.equal(preflight.headers['access-control-allow-credentials'], 'true')
    assert.equal(preflight.headers['access-control-allow-methods'], 'GET, HEAD, POST')
    assert.equal(preflight.headers['access-control-allow-headers'], 'authorization, content-type')
    assert.equal(preflight.headers['access-control-max-age'], '86400')

    const client = await RawClient.open(portOf(server), get('/msgbus/foo?format=sse', {Origin: 'https://app.example'}))
    const head = headOf(await client.until((t) => t.includes(SSE_OPEN.length.toString(16) + '\r\n' + SSE_OPEN + '\r\n')))
    assert.ok(head.includes('Access-Control-Allow-Origin: https://app.example'))
    assert.ok(head.includes('Vary: Origin, Accept, Sec-Fetch-Dest'))

    const reply = await publish(server, 'foo', 'x', 'text/plain', {Origin: 'https://app.example'})
    assert.equal(reply.status, 204)
    assert.equal(reply.headers['access-control-allow-origin'], 'https://app.example')
    assert.equal(reply.headers['access-control-expose-headers'], 'Msgbus-Id, Msgbus-Subscribers, Msgbus-Replay-From, Msgbus-Gap')
    await streamedUntil(client, (body) => body.includes(`id: ${reply.headers['msgbus-id']}\n`), 'the message')
  })

  it('a page of another origin cannot publish (403, nothing published); the server\'s own pages can', async () => {
    const server = await startBus({cors: ['https://app.example']})
    const client = await RawClient.open(portOf(server), get('/msgbus/foo?format=raw'))
    await client.until((t) => t.includes('\r\n\r\n'))
    const refused = await publish(server, 'foo', 'forged', 'text/plain', {Origin: 'https://evil.example'})
    assert.equal(refused.status, 403)
    assert.equal(refused.body.toString(), 'a page of https://evil.example may not publish here (cross-origin; see serve --cors)\n')
    assert.equal(refused.headers['access-control-allow-origin'], undefined)
    const own = await publish(server, 'foo', 'mine', 'text/plain', {Origin: server.url()})
    assert.equal(own.status, 204)
    assert.equal(await streamedUntil(client, (body) => body.length > 0, 'a message'), 'mine\n')
    assert.equal(server.counters().published, 1)
  })

  it('* lets any origin in, without credentials: a page of any origin publishes only anonymously', async () => {
    const server = await startBus({cors: ['*']})
    const reply = await publish(server, 'foo', 'x', 'text/plain', {Origin: 'https://anywhere.example', 'Sec-Fetch-Site': 'cross-site'})
    assert.equal(reply.status, 204)
    assert.equal(reply.headers['access-control-allow-origin'], '*')
    assert.equal(reply.headers['access-control-allow-credentials'], undefined)
    // A form's post carries the credentials the browser holds for the bus: that is not the page's to use.
    const credentials = {Authorization: `Basic ${Buffer.from('alice:').toString('base64')}`}
    const forged = await publish(server, 'foo', 'x', 'text/plain', {...credentials, Origin: 'https://anywhere.example'})
    assert.equal(forged.status, 403)
    assert.match(forged.body.toString(), /^a page of https:\/\/anywhere\.example may publish only without credentials under --cors '\*'/)
    const named = await startBus({cors: ['*', 'https://app.example']})
    const fromNamed = await publish(named, 'foo', 'x', 'text/plain', {...credentials, Origin: 'https://app.example'})
    assert.equal(fromNamed.status, 204)
    // Beside `*`, a named origin is still echoed with credentials, so its page can read the answer.
    assert.equal(fromNamed.headers['access-control-allow-origin'], 'https://app.example')
    assert.equal(fromNamed.headers['access-control-allow-credentials'], 'true')
    const fromAny = await publish(named, 'foo', 'x', 'text/plain', {Origin: 'https://other.example'})
    assert.deepEqual([fromAny.headers['access-control-allow-origin'], fromAny.headers.vary], ['*', 'Origin'])
  })

  it('msgbus serve --cors with something that is not an origin: a one-line error and a non-zero exit', async () => {
    const result = await msgbus(['serve', '--port', '0', '--cors', 'app.example/path'])
    assert.notEqual(result.code, 0)
    assert.equal(result.stderr.trim(), 'msgbus serve: --cors: "app.example/path" is not an origin (scheme://host[:port]) or *')
  })

  it('msgbus serve --heartbeat and --cors reach the server @slow', async () => {
    const serve = await ServeProcess.start(['--port', '0', '--address', '127.0.0.1', '--heartbeat', '1', '--cors', 'https://app.example'])
    try {
      const client = await RawClient.open(serve.port(), get('/msgbus/foo?format=sse', {Origin: 'https://app.example'}))
      const text = await streamedUntil(client, (body) => body.endsWith(': heartbeat\n\n'), 'a heartbeat')
      assert.match(text, /^retry: 2000\n: msgbus stream\n\nid: \d+-\d+\n\n: heartbeat\n\n$/)
      assert.ok(headOf(client.text()).includes('Access-Control-Allow-Origin: https://app.example'))
      client.close()
    } finally {
      await serve.stop()
    }
  })
})
