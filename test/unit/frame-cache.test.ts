import assert from 'node:assert/strict'
import type {Message} from '../../src/lib/bus/message.js'
import {FrameCache} from '../../src/lib/protocol/frame-cache.js'
import {NdjsonEncoder} from '../../src/lib/protocol/ndjson-encoder.js'
import {textFrame, type Frame} from '../../src/lib/protocol/stream-encoder.js'

function message(serial: number, size = 10): Message {
  return {id: `1000-${serial}`, time: 1000, serial, channel: 'c', type: 'text/plain', essence: 'text/plain', body: Buffer.alloc(size, 'x')}
}

describe('unit: the replay frame cache', () => {
  it('builds a message once while it is kept, the oldest going first past the bound', () => {
    const builds: number[] = []
    const build = (m: Message): Frame => {
      builds.push(m.serial)
      return textFrame('y'.repeat(100))
    }
    // Each frame is 106 bytes (`64\r\n`, 100 bytes, CRLF): the bound holds four.
    const cache = new FrameCache(4 * 106)
    const messages = [0, 1, 2, 3, 4].map((serial) => message(serial))
    const first = cache.get(messages[0], build)
    assert.equal(cache.get(messages[0], build), first)
    for (const serial of [1, 2, 3]) cache.get(messages[serial], build)
    assert.deepEqual(builds, [0, 1, 2, 3])
    cache.get(messages[4], build)
    cache.get(messages[1], build)
    assert.deepEqual(builds, [0, 1, 2, 3, 4], 'message 1 is still kept')
    cache.get(messages[0], build)
    assert.deepEqual(builds, [0, 1, 2, 3, 4, 0], 'message 0 went first')
  })

  it('keeps no frame larger than a quarter of its bound', () => {
    let builds = 0
    const cache = new FrameCache(1000)
    const big = message(0)
    for (let i = 0; i < 3; i++) cache.get(big, () => (builds++, textFrame('z'.repeat(300))))
    assert.equal(builds, 3)
  })

  it('an encoder replays the same bytes it writes live', () => {
    const encoder = new NdjsonEncoder()
    const [a, b] = [message(0), message(1)]
    const live = encoder.frame(a)
    encoder.frame(b)
    const replayed = encoder.replayFrame(a)
    assert.deepEqual(replayed.chunked, live.chunked)
    assert.equal(encoder.replayFrame(a), replayed, 'kept for the next replay')
  })
})
