// The NATS link's parts that need no server: its URL, and the batch a stream message holds.
import assert from 'node:assert/strict'
import {decodeBatch, encodeBatch} from '../../src/lib/link/nats-batch.js'
import {parseNatsUrl} from '../../src/lib/link/nats-url.js'
import {MsgbusError} from '../../src/lib/util/errors.js'

describe('unit: nats:// URLs', () => {
  it('reads host, port, credentials, stream and storage; logs show no password', () => {
    const target = parseNatsUrl('nats://al%40ice:s3cr%3At@nats.example:4223?stream=orders&storage=memory')
    assert.deepEqual(target, {server: 'nats.example:4223', user: 'al@ice', pass: 's3cr:t', stream: 'orders', storage: 'memory', shown: 'nats://al%40ice@nats.example:4223?stream=orders'})
    assert.deepEqual(parseNatsUrl('nats://127.0.0.1'), {server: '127.0.0.1:4222', user: undefined, pass: undefined, stream: 'msgbus', storage: 'file', shown: 'nats://127.0.0.1:4222?stream=msgbus'})
  })

  it('refuses what it cannot use, in one line', () => {
    for (const [url, reason] of [
      ['redis://h:1', /not a nats:\/\/ URL/],
      ['nats://h:1?stream=a.b', /stream name/],
      ['nats://h:1?storage=disk', /storage is file or memory/],
      ['nats://h:1?subject=x', /unknown parameter subject/],
      ['nats:', /not a URL|no host/],
    ] as const) {
      assert.throws(() => parseNatsUrl(url), (error: unknown) => error instanceof MsgbusError && error.code === 'ERR_MSGBUS_OPTION_INVALID' && reason.test(error.message) && !error.message.includes('\n'), url)
    }
  })
})

describe('unit: a batch in one stream message', () => {
  it('gives back every message, ids, senders and bodies byte for byte, time from the id', () => {
    const binary = Buffer.from(Array.from({length: 512}, (_, i) => i & 0xff))
    const inputs = [
      {channel: 'a/b', type: 'text/plain; charset=utf-8', essence: 'text/plain', sender: 'zoë', body: Buffer.from('héllo')},
      {channel: 'ünï', type: 'application/octet-stream', essence: 'application/octet-stream', body: binary},
      {channel: 'e', type: 'text/plain', essence: 'text/plain', body: Buffer.alloc(0)},
    ]
    const ids = ['1700000000000-0', '1700000000000-1', '1700000000001-0']
    const payload = encodeBatch(ids, inputs)
    // The client hands over a view into a larger buffer: decoding must respect its offset.
    const whole = Buffer.concat([Buffer.from('xyz'), payload])
    const view = new Uint8Array(whole.buffer, whole.byteOffset + 3, payload.length)
    const messages = decodeBatch(view)
    assert.deepEqual(
      messages.map(({id, time, channel, type, essence, sender}) => ({id, time, channel, type, essence, sender})),
      [
        {id: ids[0], time: 1700000000000, channel: 'a/b', type: 'text/plain; charset=utf-8', essence: 'text/plain', sender: 'zoë'},
        {id: ids[1], time: 1700000000000, channel: 'ünï', type: 'application/octet-stream', essence: 'application/octet-stream', sender: undefined},
        {id: ids[2], time: 1700000000001, channel: 'e', type: 'text/plain', essence: 'text/plain', sender: undefined},
      ],
    )
    assert.ok(messages[0].body.equals(inputs[0].body))
    assert.ok(messages[1].body.equals(binary))
    assert.equal(messages[2].body.length, 0)
    assert.ok(!('sender' in messages[1]), 'no sender key for a message without one')
  })
})
