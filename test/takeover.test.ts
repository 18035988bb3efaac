// A subscription's connection is taken away from Node's HTTP server
// (src/lib/server/stream/takeover.ts) the way Node lets go of an upgraded
// one. That leans on Node's internals: the parser pool in `_http_common`, the
// socket's `parser`, and the names of the HTTP server's socket listeners.
// These tests fail the day a Node release changes them, instead of the
// saving (about 3 KiB a subscription) silently turning into a leak.
import assert from 'node:assert/strict'
import {createRequire} from 'node:module'
import type {Socket} from 'node:net'
import type {BusServer} from '../src/lib/index.js'

import {portOf, publish, RawClient, startBus, stopAll, Subscription, until} from './support/harness.js'

interface FreeList {
  alloc(): unknown
  free(parser: unknown): unknown
  list: unknown[]
}

const parsers = (createRequire(import.meta.url)('_http_common') as {parsers: FreeList}).parsers
const EVENTS = ['data', 'end', 'close', 'drain', 'error', 'timeout', 'resume', 'pause']

/** The server's side of the one stream it has. */
async function streamSocket(server: BusServer): Promise<Socket> {
  await until(() => [...server.subscriptions].length === 1, 'the subscription')
  const [subscription] = server.subscriptions
  // The takeover runs once the read that brought the request has been parsed.
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  return subscription.socket
}

describe('taking a stream over from Node’s HTTP server', () => {
  afterEach(stopAll)

  it('its parser goes back to Node’s pool, and none of the HTTP server’s listeners is left on the socket', async () => {
    assert.equal(typeof parsers?.alloc, 'function', "Node's _http_common has no parsers FreeList any more")
    const allocated: unknown[] = []
    const freed: unknown[] = []
    const {alloc, free} = parsers
    parsers.alloc = function () {
      const parser = alloc.call(this)
      allocated.push(parser)
      return parser
    }

    parsers.free = function (parser: unknown) {
      freed.push(parser)
      return free.call(this, parser)
    }

    try {
      const server = await startBus()
      const subscriber = await Subscription.open(server, '/msgbus/foo')
      const socket = await streamSocket(server)
      assert.equal(allocated.length, 1, 'one parser for the one connection')
      assert.ok(freed.includes(allocated[0]), 'the parser is back in the pool')
      assert.ok(parsers.list.includes(allocated[0]), 'and in its list')
      assert.equal((socket as Socket & {parser?: unknown}).parser ?? null, null, 'the socket holds no parser')
      assert.equal((socket as Socket & {_httpMessage?: unknown})._httpMessage ?? null, null, 'nor a response')
      for (const event of EVENTS) {
        for (const listener of socket.listeners(event)) {
          const name = (listener as {name: string}).name
          assert.doesNotMatch(name, /socketOn|onSocket|onParser|connectionListener/i, `Node's ${event} listener ${name} is still on the socket`)
        }
      }

      // Only ours are: a byte from the client closes the stream, and messages still flow meanwhile.
      assert.equal(socket.listenerCount('data'), 1)
      await publish(server, 'foo', 'still streaming')
      await subscriber.waitParts(1)
      subscriber.client.socket.write('GET / HTTP/1.1\r\n\r\n')
      await subscriber.client.untilClosed()
      await until(() => [...server.subscriptions].length === 0, 'the stream to be gone')
    } finally {
      parsers.alloc = alloc
      parsers.free = free
    }
  })

  it('a client that half-closes ends its stream; the server closes its side too', async () => {
    const server = await startBus()
    const client = await RawClient.open(portOf(server), 'GET /msgbus/foo HTTP/1.1\r\nHost: x\r\n\r\n')
    await client.until((text) => text.includes('\r\n\r\n'))
    await streamSocket(server)
    client.socket.end()
    await client.untilClosed()
    await until(() => server.bus.subscriberCount === 0, 'the subscription to end')
  })
})
