// The client's streaming multipart parser, per docs/protocol.md "Clients must accept":
// our own framing, the 2007 msgbus (a recorded stream), nchan's multipart/mixed,
// an MJPEG camera, limits, and property tests against random re-chunking and an
// independent reference parser.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {readFileSync} from 'node:fs'
import {createServer, type AddressInfo, type Server, type Socket} from 'node:net'
import {Readable} from 'node:stream'
import {fileURLToPath} from 'node:url'
import fc from 'fast-check'
import type {Message} from '../src/lib/bus/message.js'
import {partToMessage, type ReceivedMessage} from '../src/lib/client/message.js'
import {referenceParse} from './support/reference-multipart.js'
import {MultipartStream} from '../src/lib/client/multipart-stream.js'
import {subscribe} from '../src/lib/client/subscribe.js'
import {MultipartEncoder} from '../src/lib/protocol/multipart-encoder.js'
import {boundaryOf, MultipartError, MultipartParser, type MultipartLimits, type Part} from '../src/lib/protocol/multipart-parser.js'
import {dechunk, portOf, publish, RawClient, startBus, stopAll, writeInSlices} from './support/harness.js'
import {randomSource} from './support/random.js'

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))

// ---------------------------------------------------------------------------
// Helpers

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1')

interface Parsed {
  parts: Part[]
  closed: boolean
}

/** Feeds the chunks in order; returns every part and whether the close delimiter was seen. */
function parse(boundary: string, input: Buffer | Buffer[] | string, limits?: MultipartLimits): Parsed {
  const parts: Part[] = []
  const parser = new MultipartParser(boundary, (part) => parts.push(part), limits)
  const chunks = typeof input === 'string' ? [bytes(input)] : Buffer.isBuffer(input) ? [input] : input
  for (const chunk of chunks) parser.write(chunk)
  return {parts, closed: parser.closed}
}

/** The bytes one at a time. */
function bytewise(buffer: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < buffer.length; i++) out.push(buffer.subarray(i, i + 1))
  return out
}

/** Splits the buffer into consecutive slices whose sizes cycle through `sizes`. */
function rechunk(buffer: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = []
  let at = 0
  for (let i = 0; at < buffer.length; i++) {
    const size = sizes[i % sizes.length]
    out.push(buffer.subarray(at, at + size))
    at += size
  }

  return out
}

/** Every way to cut the buffer in two, and in three around each position: the splits that catch carry-over bugs. */
function everySplit(buffer: Buffer): Buffer[][] {
  const out: Buffer[][] = []
  for (let i = 0; i <= buffer.length; i++) out.push([buffer.subarray(0, i), buffer.subarray(i)])
  for (let i = 0; i + 1 < buffer.length; i++) out.push([buffer.subarray(0, i), buffer.subarray(i, i + 2), buffer.subarray(i + 2)])
  return out
}

/** A plain view of a part for deepEqual: headers and the body as latin1 text. */
function plain(part: Part): {headers: Record<string, string>; body: string} {
  return {headers: {...part.headers}, body: part.body.toString('latin1')}
}

/** The same parts, whatever the split: whole, one byte at a time, and every cut in two and three. */
function assertSplitInvariant(boundary: string, stream: Buffer, limits?: MultipartLimits): Parsed {
  const whole = parse(boundary, stream, limits)
  const expected = whole.parts.map(plain)
  const one = parse(boundary, bytewise(stream), limits)
  assert.deepEqual(one.parts.map(plain), expected, 'one byte at a time')
  assert.equal(one.closed, whole.closed)
  for (const split of everySplit(stream)) {
    const got = parse(boundary, split, limits)
    assert.deepEqual(got.parts.map(plain), expected, `split at ${split.map((s) => s.length).join('+')}`)
    assert.equal(got.closed, whole.closed)
  }

  return whole
}

const sizesArb = fc.array(fc.integer({min: 1, max: 97}), {minLength: 1, maxLength: 40})

// ---------------------------------------------------------------------------

describe('multipart parser', function () {
  this.timeout(10000)

  describe('our own framing', () => {
    const B = 'msgbus-0123456789abcdef01234567'
    const part = (id: string, channel: string, body: string, type = 'text/plain', from?: string): string =>
      `Content-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}\r\nContent-Location: /msgbus/${channel}\r\n` +
      `Message-ID: ${id}\r\n${from === undefined ? '' : `From: ${from}\r\n`}\r\n${body}\r\n--${B}\r\n`

    it('reads parts as the server frames them: CRLF, Content-Length, the delimiter straight after the body', () => {
      const stream = bytes(`--${B}\r\n${part('1-1', 'foo', 'hello')}${part('1-2', 'sensors/kitchen', '{"t":21}', 'application/json', 'alice')}`)
      const {parts, closed} = assertSplitInvariant(B, stream)
      assert.equal(closed, false)
      assert.deepEqual(parts.map(plain), [
        {headers: {'content-type': 'text/plain', 'content-length': '5', 'content-location': '/msgbus/foo', 'message-id': '1-1'}, body: 'hello'},
        {
          headers: {
            'content-type': 'application/json',
            'content-length': '8',
            'content-location': '/msgbus/sensors/kitchen',
            'message-id': '1-2',
            from: 'alice',
          },
          body: '{"t":21}',
        },
      ])
      const messages = parts.map((p) => partToMessage(p, 'fallback', 7))
      assert.deepEqual(
        messages.map(({id, channel, type, sender, time}) => ({id, channel, type, sender, time})),
        [
          {id: '1-1', channel: 'foo', type: 'text/plain', sender: undefined, time: 7},
          {id: '1-2', channel: 'sensors/kitchen', type: 'application/json', sender: 'alice', time: 7},
        ],
      )
    })

    it('emits a part as soon as its body is complete, before the delimiter after it arrives', () => {
      const parts: Part[] = []
      const parser = new MultipartParser(B, (p) => parts.push(p))
      const stream = `--${B}\r\n${part('1-1', 'foo', 'hello')}`
      parser.write(bytes(stream.slice(0, stream.indexOf('hello') + 5)))
      assert.equal(parts.length, 1)
      assert.equal(parts[0].body.toString(), 'hello')
    })

    it('with Content-Length, a body holding the delimiter, the close delimiter and CRLFs is kept whole', () => {
      const body = `a\r\n--${B}\r\nContent-Length: 3\r\n\r\nxyz\r\n--${B}--\r\n\n--${B}`
      const {parts, closed} = assertSplitInvariant(B, bytes(`--${B}\r\n${part('1-1', 'foo', body)}`))
      assert.equal(closed, false)
      assert.deepEqual(parts.map((p) => p.body.toString('latin1')), [body])
    })

    it('percent-encoded Content-Location paths decode to the channel; a part without one gets the subscribed channel', () => {
      const stream = `--${B}\r\n${part('1-1', '%C3%BC%20x%2Fy', 'a')}Content-Type: text/plain\r\nContent-Length: 1\r\n\r\nb\r\n--${B}\r\n`
      const {parts} = parse(B, stream)
      assert.deepEqual(
        parts.map((p) => partToMessage(p, 'subscribed').channel),
        ['ü x/y', 'subscribed'],
      )
    })

    it('a part with Content-Length: 0 is a message with an empty body, not an empty part', () => {
      const {parts} = assertSplitInvariant(B, bytes(`--${B}\r\n${part('1-1', 'foo', '')}`))
      assert.equal(parts.length, 1)
      assert.equal(parts[0].body.length, 0)
      assert.equal(partToMessage(parts[0], '').type, 'text/plain')
    })

    it('shutdown: the empty part before the close delimiter is ignored, and the stream is closed', () => {
      // Right after the opening delimiter, and after a message.
      for (const stream of [`--${B}\r\n\r\n--${B}--\r\n`, `--${B}\r\n${part('1-1', 'foo', 'hi')}\r\n--${B}--\r\n`]) {
        const {parts, closed} = assertSplitInvariant(B, bytes(stream))
        assert.equal(closed, true)
        assert.deepEqual(
          parts.map((p) => p.body.toString()),
          stream.includes('hi') ? ['hi'] : [],
        )
      }
    })

    it('the whole stream of a MultipartEncoder (open, frames, close) reads back as the messages framed', () => {
      const encoder = new MultipartEncoder()
      const messages = [message('1-1', 'a', 'one'), message('1-2', 'b/c', Buffer.from([0, 13, 10, 45, 45]), 'application/octet-stream', 'bob')]
      const stream = Buffer.concat([encoder.open.raw, ...messages.map((m) => encoder.frame(m).raw), encoder.close.raw])
      const {parts, closed} = assertSplitInvariant(encoder.boundary, stream)
      assert.equal(closed, true)
      assertMessages(parts.map((p) => partToMessage(p, '')), messages)
    })
  })

  describe('a reused input buffer (transientInput)', () => {
    it('gives the same parts when every write comes from one buffer that is overwritten after each write', () => {
      fc.assert(
        fc.property(
          fc.array(fc.uint8Array({maxLength: 300}), {minLength: 1, maxLength: 6}),
          fc.array(fc.integer({min: 1, max: 97}), {minLength: 1, maxLength: 20}),
          (bodies, sizes) => {
            const encoder = new MultipartEncoder('reuse')
            const messages = bodies.map((body, i) => message(`1-${i}`, 'r', Buffer.from(body), 'application/octet-stream'))
            const stream = Buffer.concat([encoder.open.raw, ...messages.map((m) => encoder.frame(m).raw)])
            const seen: Buffer[] = []
            // Bodies are valid only during the callback: keep copies.
            const parser = new MultipartParser('reuse', (part) => seen.push(Buffer.from(part.body)), {transientInput: true})
            const shared = Buffer.alloc(128)
            for (let at = 0, i = 0; at < stream.length; i++) {
              const n = Math.min(sizes[i % sizes.length], stream.length - at)
              stream.copy(shared, 0, at, at + n)
              parser.write(shared.subarray(0, n))
              shared.fill(0x2d)
              at += n
            }

            assert.deepEqual(seen.map((b) => b.toString('hex')), bodies.map((b) => Buffer.from(b).toString('hex')))
          },
        ),
        {numRuns: 200},
      )
    })
  })

  describe('what other multipart writers do', () => {
    it('parts without Content-Length end where the next delimiter begins; a CRLF, LF or nothing before it is not body', () => {
      for (const end of ['\r\n', '\n', '']) {
        const stream = `--B\r\nContent-Type: text/plain\r\n\r\nfirst${end}--B\r\nContent-Type: text/html\r\n\r\n<p>second</p>${end}--B--`
        const {parts, closed} = assertSplitInvariant('B', bytes(stream))
        assert.deepEqual(
          parts.map((p) => [p.headers['content-type'], p.body.toString()]),
          [
            ['text/plain', 'first'],
            ['text/html', '<p>second</p>'],
          ],
          JSON.stringify(end),
        )
        assert.equal(closed, true)
      }
    })

    it('only one line end before a delimiter is stripped (RFC 2046), and none in the 2007 dialect: the body keeps its own line ends', () => {
      const {parts} = assertSplitInvariant('B', bytes('--B\r\nContent-Type: text/plain\r\n\r\nline\r\n\r\n--B\nContent-Type: text/plain\n\nline\n\n--B--'))
      assert.deepEqual(
        parts.map((p) => p.body.toString()),
        // Headers ended by a bare LF: the 2007 msgbus, which puts the delimiter right after the body.
        ['line\r\n', 'line\n\n'],
      )
    })

    it('2007 dialect (bare LF headers, no Content-Length): every byte before the delimiter is body', () => {
      const bodies = ['hi\n', 'line1\nline2\n\n', 'ends in crlf\r\n', '--starts with dashes', '', '\x00\x01binary\xff\n']
      const stream = bodies.map((body) => `--00MsgBus00\nContent-Type: application/octet-stream\n\n${body}`).join('') + '--00MsgBus00\n'
      const {parts} = assertSplitInvariant('00MsgBus00', Buffer.from(stream, 'latin1'))
      assert.deepEqual(parts.map((p) => p.body.toString('latin1')), bodies)
      // Where a part has a Content-Length, it wins.
      const sized = assertSplitInvariant('B', bytes('--B\nContent-Length: 2\n\nhi\n\n--B--')).parts
      assert.deepEqual(sized.map((p) => p.body.toString()), ['hi'])
    })

    it('header lines may end in a bare LF; names are case-insensitive and trimmed, repeats are joined, junk lines skipped', () => {
      const stream = '--B\nContent-Type:  text/plain \nX-Tag: a\nx-tag: b\nnot a header\n\nbody--B\r\nCONTENT-TYPE:text/html\r\n\r\n<b>--B--'
      const {parts} = assertSplitInvariant('B', bytes(stream))
      assert.deepEqual(parts.map(plain), [
        {headers: {'content-type': 'text/plain', 'x-tag': 'a, b'}, body: 'body'},
        {headers: {'content-type': 'text/html'}, body: '<b>'},
      ])
    })

    it('a part with no headers at all is text/plain (RFC 2046) and still a message when it has a body', () => {
      const {parts} = assertSplitInvariant('B', bytes('--B\r\n\r\nbare body\r\n--B--'))
      assert.deepEqual(parts.map(plain), [{headers: {}, body: 'bare body'}])
      assert.equal(partToMessage(parts[0], 'c').type, 'text/plain')
    })

    it('skips a preamble before the first delimiter, even one with dashes, a prefix of the boundary and line ends', () => {
      const stream = 'This is a preamble.\r\n-- not it --b -B --Bx? no\n--BB\r\nContent-Length: 2\r\n\r\nok\r\n--BB--\r\nepilogue'
      const {parts, closed} = assertSplitInvariant('BB', bytes(stream))
      assert.deepEqual(
        parts.map((p) => p.body.toString()),
        ['ok'],
      )
      assert.equal(closed, true)
    })

    it('accepts transport padding (spaces and tabs) after a delimiter', () => {
      const {parts} = assertSplitInvariant('B', bytes('--B \t\r\nContent-Length: 1\r\n\r\nx\r\n--B\t\nContent-Type: a/b\n\ny--B--'))
      assert.deepEqual(
        parts.map((p) => p.body.toString()),
        ['x', 'y'],
      )
    })

    it('ignores empty parts anywhere: no headers and no body carry nothing', () => {
      const stream = '--B\r\n\r\n--B\r\n\r\n\r\n--B\n\n--B\r\nContent-Type: text/plain\r\n\r\nreal\r\n--B\r\n\r\n\r\n--B--'
      const {parts, closed} = assertSplitInvariant('B', bytes(stream))
      assert.deepEqual(
        parts.map((p) => p.body.toString()),
        ['real'],
      )
      assert.equal(closed, true)
    })

    it('the close delimiter ends the stream wherever it comes, and every byte after it is ignored', () => {
      const after = '\r\nContent-Length: 5\r\n\r\nafter\r\n--B\r\nContent-Length: 5\r\n\r\nlater\r\n--B\r\n'
      const cases: Array<[string, string[]]> = [
        ['--B--', []], // as the very first bytes
        ['preamble\r\n--B--', []],
        ['--B\r\n--B--', []], // where headers would start
        ['--B\r\nContent-Type: text/plain\r\n\r\nopen body--B--', ['open body']],
        ['--B\r\nContent-Type: text/plain\r\n\r\nopen body\r\n--B--', ['open body']],
        ['--B\r\nContent-Length: 5\r\n\r\nsized--B--', ['sized']], // no line end before it
        ['--B\r\nContent-Length: 5\r\n\r\nsized\r\n--B--', ['sized']],
      ]
      for (const [head, bodies] of cases) {
        const {parts, closed} = assertSplitInvariant('B', bytes(head + after))
        assert.equal(closed, true, head)
        assert.deepEqual(
          parts.map((p) => p.body.toString()),
          bodies,
          head,
        )
      }

      // And writes after the close are ignored.
      const parts: Part[] = []
      const parser = new MultipartParser('B', (p) => parts.push(p))
      parser.write(bytes('--B--'))
      assert.equal(parser.closed, true)
      parser.write(bytes('--B\r\nContent-Length: 1\r\n\r\nx\r\n--B\r\n'))
      assert.equal(parts.length, 0)
    })

    it('a part cut off by the end of the input is not emitted, and the stream is not closed', () => {
      for (const stream of ['--B\r\nContent-Length: 10\r\n\r\nshort', '--B\r\nContent-Type: text/plain\r\n\r\nno delimiter yet', '--B\r\nContent-Type: text/pl']) {
        const {parts, closed} = parse('B', stream)
        assert.deepEqual(parts, [], stream)
        assert.equal(closed, false)
      }
    })

    it('a boundary with regular-expression and MIME special characters is matched literally', () => {
      const B = "a.b*c+(d)?'_,/:=e f"
      const {parts} = assertSplitInvariant(B, bytes(`--${B}\r\nContent-Type: text/plain\r\n\r\nx.b*c\r\n--${B}--`))
      assert.deepEqual(
        parts.map((p) => p.body.toString()),
        ['x.b*c'],
      )
    })

    it('refuses an empty boundary', () => {
      assert.throws(() => new MultipartParser('', () => {}), MultipartError)
    })
  })

  describe('boundaryOf', () => {
    const cases: Array<[string | undefined, string | undefined]> = [
      ['multipart/x-mixed-replace;boundary=00MsgBus00', '00MsgBus00'],
      ['multipart/x-mixed-replace; boundary=msgbus-abc', 'msgbus-abc'],
      ['multipart/mixed; boundary="simple boundary"', 'simple boundary'],
      ['multipart/mixed; boundary="a\\"b\\\\c"', 'a"b\\c'],
      ['multipart/mixed; boundary="quoted;with=chars"; charset=utf-8', 'quoted;with=chars'],
      ['Multipart/Mixed; BOUNDARY=Upper', 'Upper'],
      ['multipart/mixed ; charset=utf-8 ; boundary = spaced ; x=y', 'spaced'],
      ['multipart/mixed; boundary=./AZaz09./AZaz09./AZaz09./AZaz', './AZaz09./AZaz09./AZaz09./AZaz'], // nchan's alphabet
      ['multipart/x-mixed-replace;boundary=--myboundary', '--myboundary'],
      ['multipart/mixed; xboundary=no; boundary=yes', 'yes'],
      ['multipart/mixed; name="x; boundary=wrong"; boundary=right', 'right'],
      ['multipart/mixed', undefined],
      ['multipart/mixed; boundary=', undefined],
      ['multipart/mixed; boundary=""', undefined],
      ['text/plain; boundary=abc', undefined],
      ['', undefined],
      [undefined, undefined],
    ]
    for (const [contentType, expected] of cases) {
      it(`${JSON.stringify(contentType)} -> ${JSON.stringify(expected)}`, () => assert.equal(boundaryOf(contentType), expected))
    }
  })

  describe('limits: bounded memory', () => {
    it('a part declaring a Content-Length over maxPartSize is refused at its headers, before its body', () => {
      const parser = new MultipartParser('B', () => assert.fail('no part'), {maxPartSize: 1000})
      assert.throws(() => parser.write(bytes('--B\r\nContent-Length: 1001\r\n\r\n')), MultipartError)
      const huge = new MultipartParser('B', () => {}, {maxPartSize: 1000})
      assert.throws(() => huge.write(bytes('--B\r\nContent-Length: 99999999999999999999999\r\n\r\n')), MultipartError)
    })

    it('a part without Content-Length that grows over maxPartSize is an error once the limit is passed', () => {
      const parser = new MultipartParser('B', () => assert.fail('no part'), {maxPartSize: 10_000})
      parser.write(bytes('--B\r\nContent-Type: application/octet-stream\r\n\r\n'))
      let fed = 0
      assert.throws(() => {
        for (;;) {
          parser.write(Buffer.alloc(1000, 0x61))
          fed += 1000
          assert.ok(fed <= 20_000, 'still accepting bytes far past the limit')
        }
      }, MultipartError)
      assert.ok(fed <= 10_000 + 1000, `threw after ${fed} bytes`)
    })

    it('parts of exactly maxPartSize are accepted, with and without Content-Length', () => {
      const body = 'x'.repeat(100)
      const {parts} = parse('B', `--B\r\nContent-Length: 100\r\n\r\n${body}\r\n--B\r\nContent-Type: a/b\r\n\r\n${body}\r\n--B--`, {maxPartSize: 100})
      assert.deepEqual(
        parts.map((p) => p.body.length),
        [100, 100],
      )
      assert.throws(() => parse('B', `--B\r\nContent-Type: a/b\r\n\r\n${body}x\r\n--B--`, {maxPartSize: 100}), MultipartError)
    })

    it('headers over maxHeaderSize are an error, whether one endless line or many lines', () => {
      const line = new MultipartParser('B', () => {}, {maxHeaderSize: 1024})
      line.write(bytes('--B\r\nX-Long: '))
      let fed = 0
      assert.throws(() => {
        for (;;) {
          line.write(Buffer.alloc(100, 0x61))
          fed += 100
          assert.ok(fed <= 10_000, 'still accepting header bytes far past the limit')
        }
      }, MultipartError)
      assert.ok(fed <= 1024 + 100, `threw after ${fed} bytes`)

      const many = new MultipartParser('B', () => {}, {maxHeaderSize: 1024})
      many.write(bytes('--B\r\n'))
      assert.throws(() => {
        for (let i = 0; i < 1000; i++) many.write(bytes(`X-H${i}: v\r\n`))
      }, MultipartError)

      // Just under the limit is fine.
      const ok = parse('B', `--B\r\nX-A: ${'a'.repeat(1000)}\r\nContent-Length: 1\r\n\r\nz\r\n--B--`, {maxHeaderSize: 1100})
      assert.equal(ok.parts.length, 1)
    })

    it('endless padding after a delimiter is held to maxHeaderSize too', () => {
      const parser = new MultipartParser('B', () => {}, {maxHeaderSize: 1024})
      parser.write(bytes('--B'))
      let fed = 0
      assert.throws(() => {
        for (;;) {
          parser.write(Buffer.alloc(100, 0x20))
          fed += 100
          assert.ok(fed <= 10_000, 'still accepting padding far past the limit')
        }
      }, MultipartError)
    })

    describe('MultipartStream fails its reader with the MultipartError, after the messages that came before it', () => {
      const good = '--B\r\nContent-Length: 5\r\n\r\nsmall\r\n--B\r\nContent-Type: a/b\r\n\r\nopen\r\n--B\r\n'
      const bad = 'Content-Length: 11\r\n\r\n'
      // The error in the same write as the messages, or in a later one.
      for (const chunks of [[good + bad], [good, bad], [good, bad, 'more input after the error']]) {
        it(`async iterator, ${chunks.length} write(s)`, async () => {
          const stream = new MultipartStream('B', {maxPartSize: 10})
          Readable.from(chunks.map(bytes), {objectMode: false}).pipe(stream)
          const seen: string[] = []
          await assert.rejects(async () => {
            for await (const m of stream) seen.push(m.body.toString())
          }, MultipartError)
          assert.deepEqual(seen, ['small', 'open'])
        })

        it(`'data' events, ${chunks.length} write(s)`, async () => {
          const stream = new MultipartStream('B', {maxPartSize: 10})
          const seen: string[] = []
          stream.on('data', (m: ReceivedMessage) => seen.push(m.body.toString()))
          for (const chunk of chunks) stream.write(bytes(chunk))
          stream.end()
          const [error] = (await once(stream, 'error')) as [Error]
          assert.ok(error instanceof MultipartError)
          assert.deepEqual(seen, ['small', 'open'])
        })
      }

      it('a stream without errors still ends cleanly', async () => {
        const stream = new MultipartStream('B')
        stream.end(bytes(good))
        const seen: string[] = []
        for await (const m of stream) seen.push(m.body.toString())
        assert.deepEqual(seen, ['small', 'open'])
      })
    })
  })

  describe('the 2007 msgbus (recorded stream)', () => {
    const raw = readFileSync(`${FIXTURES}msgbus2007-channel-http11.raw`)
    const expected = JSON.parse(readFileSync(`${FIXTURES}msgbus2007-channel-http11.json`, 'utf8')) as {
      messages: Array<{type: string; sender: string | null; body_b64: string}>
    }
    const headEnd = raw.indexOf('\r\n\r\n')
    const head = raw.toString('latin1', 0, headEnd)
    const boundary = boundaryOf(/^content-type:\s*(.*)$/im.exec(head)![1])!
    const payload = dechunk(raw.subarray(headEnd + 4)).payload

    function assert2007(messages: Array<Pick<ReceivedMessage, 'type' | 'sender' | 'body' | 'channel' | 'id'>>, channel: string): void {
      assert.deepEqual(
        messages.map((m) => ({type: m.type, sender: m.sender ?? null, body_b64: m.body.toString('base64')})),
        expected.messages,
      )
      for (const m of messages) {
        assert.equal(m.channel, channel)
        assert.equal(m.id, undefined, '2007 parts carry no Message-ID')
      }
    }

    it('the recording is what the 2007 server sent: bare LF, no Content-Length, the delimiter right after the body', () => {
      assert.equal(boundary, '00MsgBus00')
      assert.ok(payload.includes('\n\nhello from 2007--00MsgBus00\n'))
      assert.ok(!/content-length/i.test(payload.toString('latin1')))
      assert.equal(expected.messages.length, 4)
    })

    it('whole, and one byte at a time', () => {
      for (const input of [payload, bytewise(payload)]) {
        const {parts, closed} = parse(boundary, input)
        assert.equal(closed, false)
        assert2007(
          parts.map((p) => partToMessage(p, 'interop')),
          'interop',
        )
      }
    })

    it('in random slices (fast-check)', () => {
      fc.assert(
        fc.property(sizesArb, (sizes) => {
          const {parts} = parse(boundary, rechunk(payload, sizes))
          assert2007(
            parts.map((p) => partToMessage(p, 'interop')),
            'interop',
          )
        }),
        {numRuns: 200},
      )
    })

    it('through MultipartStream (a Transform and async iterator), the channel from its options', async () => {
      const stream = new MultipartStream(boundary, {channel: 'interop'})
      Readable.from(rechunk(payload, [3, 1, 7, 2, 11]), {objectMode: false}).pipe(stream)
      const messages: ReceivedMessage[] = []
      for await (const m of stream) messages.push(m)
      assert2007(messages, 'interop')
      assert.equal(stream.sawClose, false)
      for (const m of messages) assert.ok(typeof m.time === 'number' && Math.abs(m.time - Date.now()) < 60_000)
    })

    it('replayed by a real HTTP server in small random slices, read with subscribe()', async () => {
      const requests: string[] = []
      const sockets = new Set<Socket>()
      const random = randomSource('parser: 2007 replay slices')
      const server: Server = createServer((socket) => {
        sockets.add(socket)
        socket.on('error', () => {})
        socket.on('close', () => sockets.delete(socket))
        let request = ''
        socket.on('data', async (data: Buffer) => {
          request += data.toString('latin1')
          if (!request.includes('\r\n\r\n') || requests.length > 0) return
          requests.push(request)
          // The recorded response, byte for byte, in slices of 1..40 bytes with small pauses.
          await writeInSlices(socket, raw, random, 40, 2)
          // Then the stream stays open, as the 2007 server's did, until the client hangs up.
        })
      })
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      const {port} = server.address() as AddressInfo
      try {
        const subscription = subscribe(`http://127.0.0.1:${port}/msgbus/interop`, {reconnect: false})
        const messages: ReceivedMessage[] = []
        for await (const m of subscription) {
          messages.push(m)
          if (messages.length === expected.messages.length) break
        }

        assert2007(messages, 'interop')
        assert.equal(subscription.received, expected.messages.length)
        assert.match(requests[0], /^GET \/msgbus\/interop\?gaps=1 HTTP\/1\.1\r\n/)
      } finally {
        for (const socket of sockets) socket.destroy()
        server.close()
      }
    })
  })

  describe('nchan multipart/mixed', () => {
    // nchan (src/subscribers/http-multipart-mixed.c): the stream opens with `--B` and nothing after it;
    // each message is `\r\n` + headers (Last-Modified, Etag, then Content-Type when the message has one)
    // + `\r\n` + body + `\r\n--B`; the stream ends with `--\r\n`. Boundaries are 32 characters of [./0-9A-Za-z].
    const B = 'Zx./9aQ/rT0.kLm3nP8uV2wY4.zA/bC1'
    const contentType = `multipart/mixed; boundary=${B}`
    const message = (etag: string, body: string, type?: string): string =>
      `\r\nLast-Modified: Fri, 27 Nov 2026 04:09:49 GMT\r\nEtag: ${etag}\r\n${type === undefined ? '\r\n' : `Content-Type: ${type}\r\n\r\n`}${body}\r\n--${B}`

    it('reads its messages, with and without a content type, and an empty one, to the final --', () => {
      const stream = bytes(
        `--${B}${message('1', 'first', 'text/plain')}${message('2', '{"a":[1,2]}', 'application/json')}${message('3', 'untyped')}${message('4', '', 'text/plain')}--\r\n`,
      )
      assert.equal(boundaryOf(contentType), B)
      const {parts, closed} = assertSplitInvariant(boundaryOf(contentType)!, stream)
      assert.equal(closed, true)
      const messages = parts.map((p) => partToMessage(p, 'nchan-channel'))
      assert.deepEqual(
        messages.map((m) => [m.channel, m.type, m.headers.etag, m.body.toString()]),
        [
          ['nchan-channel', 'text/plain', '1', 'first'],
          ['nchan-channel', 'application/json', '2', '{"a":[1,2]}'],
          ['nchan-channel', 'text/plain', '3', 'untyped'],
          ['nchan-channel', 'text/plain', '4', ''],
        ],
      )
    })

    it('a message is delivered when its delimiter arrives, though nothing follows it yet', () => {
      const parts: Part[] = []
      const parser = new MultipartParser(B, (p) => parts.push(p))
      parser.write(bytes(`--${B}`))
      parser.write(bytes(message('1', 'now', 'text/plain')))
      assert.deepEqual(
        parts.map((p) => p.body.toString()),
        ['now'],
      )
    })
  })

  describe('MJPEG camera streams', () => {
    /** A fake JPEG: SOI, random bytes (with line ends and dashes), EOI. */
    function jpeg(size: number, seed: number): Buffer {
      const out = Buffer.alloc(size)
      let x = seed
      for (let i = 0; i < size; i++) {
        x = (x * 1103515245 + 12345) >>> 0
        out[i] = x >>> 24
      }

      out.set([0xff, 0xd8, 0xff, 0xe0], 0)
      out.set([0x0d, 0x0a, 0x2d, 0x2d], 100) // CRLF-- inside the image data
      out.set([0xff, 0xd9], size - 2)
      return out
    }

    const frames = [jpeg(2000, 1), jpeg(517, 2), jpeg(4096, 3)]

    it('boundary=--myboundary declared and `--myboundary` sent, each frame with Content-Length', () => {
      const contentType = 'multipart/x-mixed-replace;boundary=--myboundary'
      // A frame holding the delimiter text is still read by its length.
      const tricky = Buffer.concat([bytes('\r\n--myboundary\r\nContent-Type: image/jpeg\r\n\r\n'), jpeg(300, 4)])
      const all = [...frames, tricky]
      const stream = Buffer.concat(
        all.flatMap((f) => [bytes(`--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: ${f.length}\r\n\r\n`), f, bytes('\r\n')]),
      )
      const boundary = boundaryOf(contentType)!
      for (const input of [stream, bytewise(stream), rechunk(stream, [1460]), rechunk(stream, [7, 1, 300])]) {
        const {parts} = parse(boundary, input)
        assert.equal(parts.length, all.length)
        parts.forEach((p, i) => {
          assert.equal(p.headers['content-type'], 'image/jpeg')
          assert.ok(p.body.equals(all[i]), `frame ${i}`)
        })
      }
    })

    it('boundary=myboundary declared (the usual), frames with and without Content-Length', () => {
      const stream = Buffer.concat([
        bytes('--myboundary\r\nContent-Type: image/jpeg\r\n\r\n'),
        frames[0],
        bytes('\r\n--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: ' + frames[1].length + '\r\n\r\n'),
        frames[1],
        bytes('\r\n--myboundary\r\nContent-Type: image/jpeg\r\n\r\n'),
        frames[2],
        bytes('\r\n--myboundary\r\n'),
      ])
      for (const input of [stream, bytewise(stream), rechunk(stream, [1460]), rechunk(stream, [13, 2])]) {
        const {parts} = parse(boundaryOf('multipart/x-mixed-replace; boundary=myboundary')!, input)
        assert.equal(parts.length, 3)
        parts.forEach((p, i) => assert.ok(p.body.equals(frames[i]), `frame ${i}`))
      }
    })

    it('a boundary declared with leading dashes and used as RFC 2046 says (`--` + boundary) is read too', () => {
      // boundary=--frame, so the delimiter is ----frame; parts without Content-Length.
      const stream = Buffer.concat([
        bytes('----frame\r\nContent-Type: image/jpeg\r\n\r\n'),
        frames[0],
        bytes('\r\n----frame\r\nContent-Type: image/jpeg\r\n\r\n'),
        frames[1],
        bytes('----frame--\r\n'),
      ])
      for (const input of [stream, bytewise(stream), rechunk(stream, [5, 1, 1000])]) {
        const {parts, closed} = parse('--frame', input)
        assert.equal(closed, true)
        assert.equal(parts.length, 2)
        parts.forEach((p, i) => assert.ok(p.body.equals(frames[i]), `frame ${i}: ${p.body.subarray(-6).toString('hex')}`))
      }
    })
  })

  describe('property tests', () => {
    describe('a stream recorded from a real server', () => {
      let recorded: {payload: Buffer; boundary: string; sent: Message[]}

      before(async function () {
        this.timeout(15000)
        const server = await startBus()
        const client = await RawClient.open(portOf(server), 'GET /msgbus/ HTTP/1.1\r\nHost: x\r\n\r\n')
        const opened = await client.until((t) => /\r\n\r\n[0-9a-f]+\r\n--[^\r\n]+\r\n\r\n$/.test(t), 5000, 'the stream to open')
        const boundary = /boundary=([^\r\n;]+)/.exec(opened)![1]
        const sent: Message[] = []
        const bodies: Array<[string, Buffer, string, string?]> = [
          ['foo', bytes('hello'), 'text/plain'],
          ['sensors/kitchen', Buffer.from('{"t":21.5}'), 'application/json', 'alice'],
          ['bin', Buffer.from(Array.from({length: 256}, (_, i) => i)), 'application/octet-stream'],
          ['tricky', bytes(`\r\n--${boundary}\r\nContent-Length: 1\r\n\r\n--${boundary}--\r\n`), 'text/plain; charset=utf-8'],
          ['empty', Buffer.alloc(0), 'text/plain'],
          ['ü x', Buffer.alloc(5000, 0x2d), 'application/octet-stream', 'bob'],
        ]
        for (const [channel, body, type, user] of bodies) {
          const headers: Record<string, string> = user ? {authorization: `Basic ${Buffer.from(`${user}:pw`).toString('base64')}`} : {}
          const reply = await publish(server, encodeURIComponent(channel).replaceAll('%2F', '/'), body, type, headers)
          assert.equal(reply.status, 204)
          sent.push({id: reply.headers['msgbus-id'] as string, channel, type, essence: '', sender: user, body, time: 0, serial: 0})
        }

        await client.until((t) => t.split(`--${boundary}\r\n`).length - 1 >= bodies.length + 1, 5000, 'every part')
        await server.stop()
        const text = await client.untilClosed()
        const {payload, ended} = dechunk(client.data.subarray(text.indexOf('\r\n\r\n') + 4))
        assert.ok(ended, 'the stream ends with the last chunk')
        recorded = {payload, boundary, sent}
      })

      after(stopAll)

      it('whole and one byte at a time: every message, then the close', () => {
        for (const input of [recorded.payload, bytewise(recorded.payload)]) {
          const {parts, closed} = parse(recorded.boundary, input)
          assert.equal(closed, true)
          assertMessages(
            parts.map((p) => partToMessage(p, '')),
            recorded.sent,
          )
        }
      })

      it('any random re-chunking yields the same messages (fast-check)', () => {
        fc.assert(
          fc.property(sizesArb, (sizes) => {
            const {parts, closed} = parse(recorded.boundary, rechunk(recorded.payload, sizes))
            assert.equal(closed, true)
            assertMessages(
              parts.map((p) => partToMessage(p, '')),
              recorded.sent,
            )
          }),
          {numRuns: 150},
        )
      })
    })

    it("random bodies (including the boundary text and `\\r\\n--boundary`) round-trip byte for byte through the server's framing", () => {
      const encoder = new MultipartEncoder('msgbus-0123456789abcdef')
      const boundary = encoder.boundary
      const nasty = fc.constantFrom(
        bytes(boundary),
        bytes(`--${boundary}`),
        bytes(`\r\n--${boundary}`),
        bytes(`\r\n--${boundary}\r\n`),
        bytes(`--${boundary}--`),
        bytes('\r\n'),
        bytes('\n'),
        bytes('-'),
      )
      const bodyArb = fc
        .array(fc.oneof(fc.uint8Array({maxLength: 64}).map((a) => Buffer.from(a)), nasty), {maxLength: 8})
        .map((pieces) => Buffer.concat(pieces))
      const messageArb = fc.record({
        body: bodyArb,
        channel: fc.constantFrom('a', 'b/c', 'ü', '%', 'x y'),
        type: fc.constantFrom('text/plain', 'application/octet-stream', 'image/jpeg'),
        sender: fc.option(fc.constantFrom('alice', 'bob'), {nil: undefined}),
      })
      fc.assert(
        fc.property(fc.array(messageArb, {maxLength: 8}), sizesArb, fc.boolean(), (inputs, sizes, close) => {
          const messages = inputs.map((m, i) => message(`100-${i}`, m.channel, m.body, m.type, m.sender))
          const stream = Buffer.concat([encoder.open.raw, ...messages.map((m) => encoder.frame(m).raw), ...(close ? [encoder.close.raw] : [])])
          const {parts, closed} = parse(boundary, rechunk(stream, sizes))
          assert.equal(closed, close)
          assertMessages(
            parts.map((p) => partToMessage(p, '')),
            messages,
          )
        }),
        {numRuns: 300},
      )
    })

    it('an independent reference parser agrees with MultipartParser on random streams of other writers', () => {
      fc.assert(
        fc.property(streamArb, sizesArb, ({boundary, stream}, sizes) => {
          const expected = referenceParse(stream, boundary)
          const got = parse(boundary, rechunk(stream, sizes))
          assert.deepEqual(got.parts.map(plain), expected.parts.map(plain))
          assert.equal(got.closed, expected.closed)
        }),
        {numRuns: 400},
      )
    })

    it('the generated streams exercise what they should (sanity check of the generator)', () => {
      const samples = fc.sample(streamArb, {numRuns: 300, seed: 42})
      const all = samples.map((s) => referenceParse(s.stream, s.boundary))
      assert.ok(all.some((r) => r.closed) && all.some((r) => !r.closed))
      assert.ok(all.some((r) => r.parts.length >= 3))
      assert.ok(all.some((r) => r.parts.some((p) => p.headers['content-length'] === undefined && p.body.length > 0)))
      assert.ok(samples.some((s) => s.stream.includes('\n\n')) && samples.some((s) => s.stream.includes('\r\n\r\n')))
    })
  })
})

// ---------------------------------------------------------------------------
// Messages and assertions

function message(id: string, channel: string, body: Buffer | string, type = 'text/plain', sender?: string): Message {
  return {id, channel, type, essence: type.split(';')[0], sender, body: Buffer.isBuffer(body) ? body : Buffer.from(body), time: 0, serial: 0}
}

function assertMessages(got: ReceivedMessage[], sent: Message[]): void {
  assert.deepEqual(
    got.map((m) => ({id: m.id, channel: m.channel, type: m.type, sender: m.sender, body: m.body.toString('hex')})),
    sent.map((m) => ({id: m.id, channel: m.channel, type: m.type, sender: m.sender, body: m.body.toString('hex')})),
  )
}

// ---------------------------------------------------------------------------
// Random streams of other writers, and a reference parser for them

interface GenPart {
  headers: Array<[string, string]>
  body: Buffer
  sized: boolean
}

// '--frame': a boundary declared with leading dashes, delimited as RFC 2046 says (`----frame`).
const boundaryArb = fc.constantFrom('B', 'frontier', 'msgbus-1f2e3d4c5b6a', '00MsgBus00', "a'()+_,-./:=?", '--frame')

/**
 * A stream as any of the writers above might send it: a random preamble,
 * `\r\n` or `\n` line ends, parts with and without Content-Length (an unsized
 * body never holds the delimiter nor ends in what would be taken for the line
 * end before it), an optional line end before each delimiter, transport
 * padding, empty parts, and an optional close delimiter followed by junk.
 */
const streamArb = boundaryArb.chain((boundary) => {
  const delimiter = bytes(`--${boundary}`)
  const eol = fc.constantFrom('\r\n', '\n')
  const headerArb = fc.tuple(
    fc.constantFrom('Content-Type', 'Message-ID', 'From', 'X-Thing', 'content-location'),
    fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,20}[\x21-\x7e])?$/),
  )
  const rawBody = fc
    .array(fc.oneof(fc.uint8Array({maxLength: 40}).map((a) => Buffer.from(a)), fc.constant(delimiter), fc.constant(bytes('\r\n'))), {maxLength: 5})
    .map((pieces) => Buffer.concat(pieces))
  const partArb: fc.Arbitrary<GenPart> = fc.record({
    headers: fc.array(headerArb, {maxLength: 4}),
    body: rawBody,
    sized: fc.boolean(),
  })
  const preamble = fc.uint8Array({maxLength: 30}).map((a) => Buffer.from(a))
  return fc
    .record({
      preamble,
      parts: fc.array(fc.tuple(partArb, eol, fc.constantFrom('', '\r\n', '\n'), fc.constantFrom('', ' ', '\t '), fc.boolean()), {maxLength: 6}),
      firstEol: eol,
      close: fc.boolean(),
      epilogue: fc.uint8Array({maxLength: 30}).map((a) => Buffer.from(a)),
    })
    .map(({preamble, parts, firstEol, close, epilogue}) => {
      const out: Buffer[] = []
      // A preamble must not hold the delimiter (it would start the stream there); drop any by cutting dashes.
      out.push(bytes(preamble.toString('latin1').replaceAll('-', '_')), bytes('\r\n'), delimiter, bytes(firstEol))
      for (const [part, lineEnd, beforeDelimiter, padding, empty] of parts) {
        if (empty) {
          // An empty part: no headers, no body.
          out.push(bytes(lineEnd), bytes(beforeDelimiter), delimiter, bytes(padding + lineEnd))
          continue
        }

        let body = part.body
        const headers = [...part.headers]
        if (part.sized) {
          headers.push(['Content-Length', String(body.length)])
        } else {
          // Unsized: no delimiter inside, and no trailing bytes that the parser would take for the line end before it.
          body = bytes(body.toString('latin1').replaceAll(delimiter.toString('latin1'), '<d>'))
          while (body.toString('latin1').includes(delimiter.toString('latin1'))) {
            body = bytes(body.toString('latin1').replaceAll(delimiter.toString('latin1'), '<d>'))
          }
          if (beforeDelimiter === '' ? body.at(-1) === 0x0a : beforeDelimiter === '\n' && body.at(-1) === 0x0d) body = Buffer.concat([body, bytes('.')])
          // A body that ends in dashes could run into the delimiter and form it early.
          if (body.at(-1) === 0x2d && beforeDelimiter === '') body = Buffer.concat([body, bytes('.')])
          if (headers.length === 0 && body.length === 0) body = bytes('.')
        }

        for (const [name, value] of headers) out.push(bytes(`${name}: ${value}${lineEnd}`))
        out.push(bytes(lineEnd), body, bytes(beforeDelimiter), delimiter, bytes(padding + lineEnd))
      }

      if (close) out.push(bytes('\r\n'), delimiter, bytes('--'), epilogue)
      return {boundary, stream: Buffer.concat(out)}
    })
})
