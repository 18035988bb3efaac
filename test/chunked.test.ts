// The chunked transfer decoder the load tools read raw sockets with.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {ChunkedDecoder, ChunkedError} from '../src/lib/protocol/chunked-decoder.js'

/** Encodes payloads as chunks (hex sizes in either case, optional extensions), then the last chunk. */
function encode(payloads: Uint8Array[], upper: boolean, extension: boolean): Buffer {
  const parts: Buffer[] = []
  for (const payload of payloads) {
    if (payload.length === 0) continue
    const size = payload.length.toString(16)
    parts.push(Buffer.from(`${upper ? size.toUpperCase() : size}${extension ? ';name=value' : ''}\r\n`), Buffer.from(payload), Buffer.from('\r\n'))
  }

  parts.push(Buffer.from('0\r\n\r\n'))
  return Buffer.concat(parts)
}

function decode(stream: Buffer, sizes: number[]): {payload: Buffer; ended: boolean} {
  const out: Buffer[] = []
  const decoder = new ChunkedDecoder((data) => out.push(Buffer.from(data)))
  for (let at = 0, i = 0; at < stream.length; i++) {
    const n = Math.max(1, Math.min(sizes[i % sizes.length], stream.length - at))
    decoder.write(stream.subarray(at, at + n))
    at += n
  }

  return {payload: Buffer.concat(out), ended: decoder.ended}
}

describe('chunked decoder', () => {
  it('any split of a chunked stream gives back the payload, and sees the last chunk', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({maxLength: 600}), {maxLength: 8}),
        fc.array(fc.integer({min: 1, max: 50}), {minLength: 1, maxLength: 10}),
        fc.boolean(),
        fc.boolean(),
        (payloads, sizes, upper, extension) => {
          const {payload, ended} = decode(encode(payloads, upper, extension), sizes)
          assert.deepEqual(payload, Buffer.concat(payloads.map((p) => Buffer.from(p))))
          assert.equal(ended, true)
        },
      ),
      {numRuns: 300},
    )
  })

  it('stops at the last chunk: bytes after it are not payload', () => {
    const {payload, ended} = decode(Buffer.from('3\r\nabc\r\n0\r\n\r\n5\r\nextra\r\n'), [4])
    assert.equal(payload.toString(), 'abc')
    assert.equal(ended, true)
  })

  it('a bare LF ends a size line too', () => {
    assert.equal(decode(Buffer.from('2\nhi\r\n0\n\n'), [100]).payload.toString(), 'hi')
  })

  for (const [stream, why] of [
    ['zz\r\nabc\r\n', 'a size that is not hex'],
    ['\r\nabc\r\n', 'an empty size line'],
    ['3\r\nabcX\r\n', 'data not followed by CRLF'],
    [`${'1'.repeat(2000)}`, 'a size line that never ends'],
  ]) {
    it(`refuses ${why}`, () => {
      assert.throws(() => new ChunkedDecoder(() => {}).write(Buffer.from(stream)), ChunkedError)
    })
  }
})
