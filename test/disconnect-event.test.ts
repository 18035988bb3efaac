// The in-band disconnect event (docs/protocol.md, "Where the replay begins,
// and gaps" and "Slow subscribers"): the last thing a stream carries before
// the server cuts it, on the wire of each format, over raw sockets.
import assert from 'node:assert/strict'
import {dechunk, portOf, publish, RawClient, startBus, stopAll, textMessage, until} from './support/harness.js'

const B = 'test-boundary'
const KiB = 1024

function get(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`
}

/** The body so far of a chunked response, and whether its last chunk came. */
function body(client: RawClient): {text: string; ended: boolean} {
  const bytes = client.data
  const {payload, ended} = dechunk(bytes.subarray(bytes.indexOf('\r\n\r\n') + 4))
  return {text: payload.toString('latin1'), ended}
}

describe('the disconnect event', function () {
  this.timeout(30_000)

  afterEach(() => stopAll())

  it('at shutdown, before the proper end: SSE, NDJSON, and multipart with ?gaps=1 say `shutdown` and the last id; multipart without, and raw, say nothing', async () => {
    const server = await startBus({boundary: B})
    const port = portOf(server)
    const paths = ['/msgbus/s?format=sse', '/msgbus/s?format=ndjson', '/msgbus/s?gaps=1', '/msgbus/s', '/msgbus/s?format=raw']
    const clients = await Promise.all(paths.map((path) => RawClient.open(port, get(path))))
    await until(() => server.bus.subscriberCount === paths.length, 'the subscriptions')
    const id = (await publish(server, 's', 'last')).headers['msgbus-id'] as string
    for (const client of clients) await client.until(() => body(client).text.includes('last'))
    await server.stop()
    const json = `{"event":"disconnect","reason":"shutdown","after":"${id}"}`
    const [sse, ndjson, multipart, plain, raw] = await Promise.all(clients.map(async (client) => (await client.untilClosed(), body(client))))
    for (const stream of [sse, ndjson, multipart, plain, raw]) assert.equal(stream.ended, true, 'a proper end: the last chunk')
    assert.ok(sse.text.endsWith(`event: disconnect\ndata: ${json}\n\n`), JSON.stringify(sse.text.slice(-200)))
    assert.ok(ndjson.text.endsWith(`"body":"last"}\n${json}\n`), JSON.stringify(ndjson.text.slice(-200)))
    const part = `Content-Type: application/json\r\nContent-Length: ${json.length}\r\nMsgbus-Event: disconnect\r\n\r\n${json}\r\n--${B}\r\n`
    assert.ok(multipart.text.endsWith(`last\r\n--${B}\r\n${part}\r\n--${B}--\r\n`), JSON.stringify(multipart.text.slice(-300)))
    assert.ok(plain.text.endsWith(`last\r\n--${B}\r\n\r\n--${B}--\r\n`), 'a 2007 reader sees no change')
    assert.equal(raw.text, 'last\n')
  })

  it('cut as slow: NDJSON reads every line written, then `slow` with the bytes unsent and how long it was behind, then the connection ends without the last chunk', async () => {
    const server = await startBus({maxPending: 64 * KiB, slowTimeout: 0})
    const client = await RawClient.open(portOf(server), get('/msgbus/flood?format=ndjson'))
    await until(() => server.bus.subscriberCount === 1, 'the subscription')
    client.socket.pause()
    const padding = 'x'.repeat(16 * KiB)
    let published = 0
    while (server.counters().slowDisconnects === 0) {
      assert.ok(published < 16_000, 'cut before 256 MiB')
      await server.bus.publishAll(Array.from({length: 16}, () => textMessage('flood', `${++published} ${padding}`)))
      await new Promise((resolve) => setImmediate(resolve))
    }

    client.socket.resume()
    await client.untilClosed(20_000)
    const {text, ended} = body(client)
    assert.equal(ended, false, 'cut short: no last chunk')
    const lines = text.trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    const notice = lines.pop()!
    assert.deepEqual(Object.keys(notice), ['event', 'reason', 'after', 'unsent', 'behindMs'])
    assert.equal(notice.event, 'disconnect')
    assert.equal(notice.reason, 'slow')
    assert.equal(notice.after, lines.at(-1)!.id, 'the last message written before it')
    assert.ok((notice.unsent as number) > 64 * KiB)
    assert.ok(lines.length < published, 'messages after the cut were not written')
  })
})
