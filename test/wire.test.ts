// The exact bytes of docs/protocol.md, pinned over raw sockets for HTTP/1.0 and HTTP/1.1.
import assert from 'node:assert/strict'
import {assertIncreasing, dechunk, publish, RawClient, startBus, stopAll, portOf} from './support/harness.js'

const B = 'testboundary'

describe('wire format', () => {
  afterEach(stopAll)

  it('HTTP/1.1: status line, headers, the first delimiter at once, then one chunk per part', async () => {
    const server = await startBus({boundary: B})
    const client = await RawClient.open(portOf(server), 'GET /msgbus/foo HTTP/1.1\r\nHost: x\r\n\r\n')
    const opened = await client.until((t) => t.endsWith(`--${B}\r\n\r\n`))
    const [head] = opened.split('\r\n\r\n')
    const lines = head.split('\r\n')
    assert.equal(lines[0], 'HTTP/1.1 200 OK')
    assert.ok(lines.includes(`Content-Type: multipart/x-mixed-replace;boundary=${B}`))
    assert.ok(lines.includes('Cache-Control: no-cache'))
    assert.ok(lines.includes('Transfer-Encoding: chunked'))
    assert.ok(lines.some((line) => /^Server: msgbus(\/[\d.]+)?$/.test(line)))
    assert.ok(lines.some((line) => line.startsWith('Date: ')))
    // The first chunk is exactly the opening delimiter.
    const open = `--${B}\r\n`
    assert.ok(opened.endsWith(`\r\n\r\n${open.length.toString(16)}\r\n${open}\r\n`))

    const reply = await publish(server, 'foo', 'hello')
    const id = reply.headers['msgbus-id'] as string
    const part = `Content-Type: text/plain\r\nContent-Length: 5\r\nContent-Location: /msgbus/foo\r\nMessage-ID: ${id}\r\n\r\nhello\r\n--${B}\r\n`
    const chunk = `${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`
    const text = await client.until((t) => t.endsWith(chunk))
    assert.equal(text, opened + chunk)
  })

  it('HTTP/1.0: no chunking, the same part bytes, the connection closes at shutdown', async () => {
    const server = await startBus({boundary: B})
    const client = await RawClient.open(portOf(server), 'GET /msgbus/foo HTTP/1.0\r\n\r\n')
    const opened = await client.until((t) => t.endsWith(`\r\n\r\n--${B}\r\n`))
    const head = opened.slice(0, opened.indexOf('\r\n\r\n'))
    assert.ok(!/transfer-encoding/i.test(head))
    assert.ok(!/content-length/i.test(head))
    assert.ok(head.includes('Connection: close'))
    const reply = await publish(server, 'foo', '<h1>hi</h1>', 'text/html')
    const part = `Content-Type: text/html\r\nContent-Length: 11\r\nContent-Location: /msgbus/foo\r\nMessage-ID: ${reply.headers['msgbus-id']}\r\n\r\n<h1>hi</h1>\r\n--${B}\r\n`
    await client.until((t) => t.endsWith(part))
    await server.stop()
    const closed = await client.untilClosed()
    assert.ok(closed.endsWith(`${part}\r\n--${B}--\r\n`), 'ends with an empty part and the close delimiter')
  })

  it('HTTP/1.1 shutdown sends the close delimiter, then the last chunk', async () => {
    const server = await startBus({boundary: B})
    const client = await RawClient.open(portOf(server), 'GET /msgbus/foo HTTP/1.1\r\nHost: x\r\n\r\n')
    await client.until((t) => t.endsWith(`--${B}\r\n\r\n`))
    await server.stop()
    const text = await client.untilClosed()
    const close = `\r\n--${B}--\r\n`
    assert.ok(text.endsWith(`${close.length.toString(16)}\r\n${close}\r\n0\r\n\r\n`))
  })

  it('the all-channels stream carries each message with its Content-Location, and From with Basic auth', async () => {
    const server = await startBus({boundary: B})
    const client = await RawClient.open(portOf(server), 'GET /msgbus/ HTTP/1.1\r\nHost: x\r\n\r\n')
    await client.until((t) => t.endsWith(`--${B}\r\n\r\n`))
    const auth = `Basic ${Buffer.from('alice:pw').toString('base64')}`
    const reply = await publish(server, 'sensors/kitchen%20temp', '21.5', 'text/plain; charset=utf-8', {Authorization: auth})
    assert.equal(reply.headers['msgbus-subscribers'], '1')
    await client.until((t) => t.endsWith(`21.5\r\n--${B}\r\n\r\n`))
    const text = dechunk(client.data.subarray(client.text().indexOf('\r\n\r\n') + 4)).payload.toString('latin1')
    assert.equal(
      text,
      `--${B}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\nContent-Location: /msgbus/sensors/kitchen%20temp\r\n` +
        `Message-ID: ${reply.headers['msgbus-id']}\r\nFrom: alice\r\n\r\n21.5\r\n--${B}\r\n`,
    )
  })

  it('answers 204 with Msgbus-Id and Msgbus-Subscribers, ids increasing', async () => {
    const server = await startBus()
    const first = await publish(server, 'a', 'one')
    const second = await publish(server, 'a', 'two')
    assert.equal(first.status, 204)
    assert.equal(first.body.length, 0)
    assert.equal(first.headers['msgbus-subscribers'], '0')
    assertIncreasing([first.headers['msgbus-id'] as string, second.headers['msgbus-id'] as string])
    assert.match(String(first.headers.server), /^msgbus/)
  })
})
