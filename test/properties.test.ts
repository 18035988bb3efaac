// Property tests (fast-check) of the protocol code against independent
// references: the streaming multipart parser against a whole-buffer reader
// (test/support/reference-multipart.ts), pattern lists against OpenSSH's
// match_pattern_list (test/support/reference-pattern.ts), and channel-name
// decoding against a strict decoder written here, plus a live round trip of
// channel names through a real server.
import assert from 'node:assert/strict'
import contentType from 'content-type'
import fc from 'fast-check'
import type {Message} from '../src/lib/bus/message.js'
import {BUS_PREFIX, ChannelError, channelPath, decodeChannel, MAX_CHANNEL_BYTES} from '../src/lib/protocol/channel.js'
import {ChunkedDecoder, ChunkedError} from '../src/lib/protocol/chunked-decoder.js'
import {compileFilter} from '../src/lib/protocol/filter.js'
import {MultipartError, MultipartParser, type MultipartLimits} from '../src/lib/protocol/multipart-parser.js'
import {mediaTypeOrReason} from '../src/lib/protocol/media-type.js'
import {compilePatternList} from '../src/lib/protocol/pattern.js'
import {publish, startBus, stopAll, Subscription} from './support/harness.js'
import {referenceParse, type ReferencePart} from './support/reference-multipart.js'
import {matchPatternList} from './support/reference-pattern.js'

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1')

// ---------------------------------------------------------------------------
// Running the parser

/** A part as compared: own header entries in order, the body as hex. */
interface Seen {
  headers: Array<[string, string]>
  body: string
}

interface Outcome {
  parts: Seen[]
  closed: boolean
  /** The MultipartError's message when the parser refused the input. */
  error?: string
}

const seen = (part: ReferencePart | {headers: Record<string, string>; body: Buffer}): Seen => ({
  headers: Object.entries(part.headers),
  body: part.body.toString('hex'),
})

function reference(boundary: string, stream: Buffer): Outcome {
  const {parts, closed} = referenceParse(stream, boundary)
  return {parts: parts.map(seen), closed}
}

interface RunOptions {
  limits?: MultipartLimits
  /** Check after each write that what the parser keeps stays within its limits. */
  memoryBound?: number
}

/**
 * Feeds the chunks to a MultipartParser. With transientInput every chunk is
 * copied into one shared buffer that is overwritten after each write, as a
 * socket's onread buffer is. Errors other than MultipartError propagate.
 */
function run(boundary: string, chunks: Buffer[], options: RunOptions = {}): Outcome {
  const parts: Seen[] = []
  const parser = new MultipartParser(boundary, (part) => parts.push(seen(part)), options.limits)
  const transient = options.limits?.transientInput ?? false
  const shared = transient ? Buffer.alloc(Math.max(1, ...chunks.map((c) => c.length))) : undefined
  try {
    for (const chunk of chunks) {
      if (shared) {
        chunk.copy(shared)
        parser.write(shared.subarray(0, chunk.length))
        shared.fill(0x2d)
      } else {
        parser.write(chunk)
      }

      if (options.memoryBound !== undefined) {
        const held = heldBytes(parser)
        assert.ok(held <= options.memoryBound, `the parser holds ${held} bytes, over ${options.memoryBound}`)
      }
    }
  } catch (error) {
    if (error instanceof MultipartError) return {parts, closed: parser.closed, error: error.message}
    throw error
  }

  return {parts, closed: parser.closed}
}

/** What a parser keeps between writes: the carried-over input and the body so far. */
function heldBytes(parser: MultipartParser): number {
  const inside = parser as unknown as {pending?: Buffer; bodyChunks: Buffer[]}
  return (inside.pending?.length ?? 0) + inside.bodyChunks.reduce((sum, chunk) => sum + chunk.length, 0)
}

/** Cuts the buffer at the given positions (taken modulo its length + 1); null means one byte at a time. */
function split(buffer: Buffer, cuts: number[] | null): Buffer[] {
  if (cuts === null) return Array.from({length: buffer.length}, (_, i) => buffer.subarray(i, i + 1))
  const points = [...new Set(cuts.map((cut) => cut % (buffer.length + 1)))].sort((a, b) => a - b)
  const out: Buffer[] = []
  let at = 0
  for (const point of [...points, buffer.length]) {
    out.push(buffer.subarray(at, point))
    at = point
  }

  return out
}

const cutsArb: fc.Arbitrary<number[] | null> = fc.oneof(
  {weight: 1, arbitrary: fc.constant(null)},
  {weight: 5, arbitrary: fc.array(fc.nat({max: 100000}), {maxLength: 16})},
)

// ---------------------------------------------------------------------------
// Random multipart streams

// bchars of RFC 2046, and a few boundaries real writers use, with leading dashes too.
const BCHARS = "0123456789abcXYZ'()+_,-./:=? "
const boundaryArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('B', 'b', 'frontier', '00MsgBus00', 'msgbus-0123456789abcdef01234567', "a'()+_,-./:=?", '--frame', '--myboundary', '--a-b'),
  fc
    .string({unit: fc.constantFrom(...BCHARS), minLength: 1, maxLength: 12})
    .filter((b) => !b.startsWith('--') && !b.endsWith(' ')),
)

interface HeaderSpec {
  name: string
  value: string
  space: string
}

interface PartSpec {
  kind: 'sized' | 'open' | 'empty' | 'cut'
  headers: HeaderSpec[]
  body: string
  /** Where the Content-Length line goes among the headers, and how it is written. */
  lengthAt: number
  lengthName: string
  lengthStyle: 'plain' | 'zeros' | 'spaced' | 'bogus'
  padding: string
  /** The line end after the delimiter; '' (headers straight after it) only when the first header allows. */
  delimiterEol: string
  eol: string
  /** A line end before the next delimiter: the body's own for a sized part, stripped for an open one. */
  beforeDelimiter: string
  /** Bytes after a sized body, before the next delimiter: skipped. */
  junk: string
}

interface StreamSpec {
  boundary: string
  /** A dashed boundary written as RFC 2046 says (`----frame`) rather than as cameras do. */
  rfc: boolean
  preamble: string
  parts: PartSpec[]
  close: boolean
  /** After the last delimiter when not closed: something that is not yet a part. */
  tail: string
  epilogue: string
}

const byteString = (maxLength: number): fc.Arbitrary<string> => fc.uint8Array({maxLength}).map((a) => Buffer.from(a).toString('latin1'))

/** Bodies built from pieces that trouble a parser: the delimiter, its prefixes, line ends, dashes, random bytes. */
function bodyArb(boundary: string): fc.Arbitrary<string> {
  const delimiter = boundary.startsWith('--') ? boundary : `--${boundary}`
  const piece = fc.oneof(
    {weight: 4, arbitrary: byteString(24)},
    {weight: 1, arbitrary: fc.constantFrom(delimiter, `--${delimiter}`, `${delimiter}--`, `\r\n${delimiter}`, `\n${delimiter}\r\n`)},
    {weight: 2, arbitrary: fc.integer({min: 1, max: delimiter.length}).map((n) => delimiter.slice(0, n))},
    {weight: 2, arbitrary: fc.constantFrom('\r\n', '\n', '\r', '-', '--', '\r\n\r\n', ' ', ':')},
  )
  return fc.array(piece, {maxLength: 6}).map((pieces) => pieces.join(''))
}

const headerArb: fc.Arbitrary<HeaderSpec> = fc.record({
  name: fc.oneof(
    fc.constantFrom('Content-Type', 'content-location', 'Message-ID', 'From', 'X-Thing', 'x-thing', 'CONTENT-TYPE', ' Spaced ', '\tTabbed'),
    // Names an object has already: the parser must not confuse them with headers seen.
    fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'),
    fc.string({unit: fc.constantFrom('a', 'Z', '-', '_', ' ', '\t', '\r', '\u00a0', '\u00e9', '\u0085', '"'), minLength: 1, maxLength: 8}),
  ),
  value: fc.oneof(
    fc.constantFrom('text/plain', 'application/octet-stream; charset=x', '1-2', '/msgbus/a%20b', ''),
    fc.string({unit: fc.integer({min: 0, max: 255}).map((c) => String.fromCharCode(c)), maxLength: 16}),
  ),
  space: fc.constantFrom('', ' ', '  ', '\t'),
})

function partArb(boundary: string): fc.Arbitrary<PartSpec> {
  return fc.record({
    kind: fc.constantFrom('sized', 'sized', 'open', 'open', 'empty', 'cut'),
    headers: fc.array(headerArb, {maxLength: 4}),
    body: bodyArb(boundary),
    lengthAt: fc.nat({max: 4}),
    lengthName: fc.constantFrom('Content-Length', 'content-length', 'CONTENT-LENGTH', ' Content-Length'),
    lengthStyle: fc.constantFrom('plain', 'plain', 'zeros', 'spaced', 'bogus'),
    padding: fc.constantFrom('', '', ' ', '\t ', '   '),
    delimiterEol: fc.constantFrom('\r\n', '\r\n', '\n', ''),
    eol: fc.constantFrom('\r\n', '\n'),
    beforeDelimiter: fc.constantFrom('', '\r\n', '\n'),
    junk: fc.oneof(fc.constant(''), fc.constant('\r\n'), byteString(12)),
  }) as fc.Arbitrary<PartSpec>
}

const streamSpecArb: fc.Arbitrary<StreamSpec> = boundaryArb.chain((boundary) =>
  fc.record({
    boundary: fc.constant(boundary),
    rfc: fc.boolean(),
    preamble: fc.oneof(fc.constant(''), byteString(20), bodyArb(boundary)),
    parts: fc.array(partArb(boundary), {maxLength: 6}),
    close: fc.boolean(),
    tail: fc.constantFrom('', '\r\n', ' ', '\r\nContent-Type: text/pl', '\r\nContent-Length: 5\r\n\r\nab', '\nX: y\n\nopen body'),
    epilogue: fc.oneof(fc.constant(''), byteString(20), bodyArb(boundary)),
  }),
)

interface Built {
  boundary: string
  stream: Buffer
  /** The parts the writer meant, in order; empty parts left out. */
  expected: ReferencePart[]
  closed: boolean
}

/**
 * Serialises a stream spec as a writer would, adjusting what would be
 * ambiguous (a body holding the delimiter, a line end before a delimiter
 * that belongs to an open body, a header line that begins with the
 * delimiter), so the parts meant are the only right reading.
 */
function build(spec: StreamSpec): Built {
  const {boundary} = spec
  const dashed = boundary.startsWith('--')
  const delimiter = dashed ? boundary : `--${boundary}`
  // What goes on the wire; the parser finds `delimiter` at its end.
  const written = dashed && spec.rfc ? `--${delimiter}` : delimiter
  const firstAtEnd = (before: string): boolean => (before + written).indexOf(delimiter) === before.length + written.length - delimiter.length
  const noDelimiter = (text: string): string => {
    let out = text
    while (out.includes(delimiter)) out = out.replaceAll(delimiter, '<#>')
    return out
  }

  const expected: ReferencePart[] = []
  let out = ''
  let preamble = noDelimiter(spec.preamble)
  if (!firstAtEnd(preamble)) preamble += '#'
  out += preamble + written

  for (const part of spec.parts) {
    if (part.kind === 'cut') {
      // A delimiter where the headers would start: a part that never was.
      out += part.padding + (part.delimiterEol || '\r\n') + written
      continue
    }

    if (part.kind === 'empty') {
      out += part.padding + (part.delimiterEol || '\r\n') + part.eol + part.beforeDelimiter + written
      continue
    }

    const lines: Array<[string, string]> = []
    const model = new Map<string, string>()
    const add = (name: string, value: string, space: string): void => {
      lines.push([name, `${name}:${space}${value}`])
      const key = name.trim().toLowerCase()
      const trimmed = value.trim()
      const before = model.get(key)
      model.set(key, before === undefined ? trimmed : `${before}, ${trimmed}`)
    }

    const headers = part.headers.map((header) => {
      let name = header.name.replaceAll(':', '').replaceAll('\n', '')
      if (name === '' || name.trim().toLowerCase() === 'content-length') name = `X${name}`
      // A header line must not begin with the delimiter (it would end the part).
      if (name.startsWith(delimiter) || name.startsWith(`--${delimiter}`) || delimiter.startsWith(name)) name = `X${name}`
      return {...header, name, value: header.value.replaceAll('\n', '')}
    })
    const sized = part.kind === 'sized'
    let body = part.body
    const lengthValue = {plain: String(body.length), zeros: `00${body.length}`, spaced: ` ${body.length}\t`, bogus: `${body.length}x`}[part.lengthStyle]
    const declares = sized || part.lengthStyle === 'bogus'
    for (let i = 0; i <= headers.length; i++) {
      if (declares && i === Math.min(part.lengthAt, headers.length)) add(part.lengthName, sized ? lengthValue.replace('x', '') : lengthValue, ' ')
      if (i < headers.length) add(headers[i].name, headers[i].value, headers[i].space)
    }

    const isSized = sized
    // Headers ended by a bare LF: the 2007 dialect, where every byte before the delimiter is the body's.
    const bare = part.eol === '\n' && model.size > 0
    let meant = body
    if (!isSized) {
      body = noDelimiter(body)
      // The parser strips the dashes of an RFC 2046 delimiter and (but in the 2007 dialect) one line end before the delimiter.
      const readBack = (candidate: string): string => {
        let raw = candidate + part.beforeDelimiter + written.slice(0, written.length - delimiter.length)
        if (dashed && raw.endsWith('--')) raw = raw.slice(0, -2)
        return bare ? raw : raw.replace(/\r?\n$/, '')
      }

      if (!firstAtEnd(body + part.beforeDelimiter) || (!bare && readBack(body) !== body)) body += '#'
      meant = readBack(body)
    }

    // Headers straight after the delimiter only when the first line cannot be taken for padding, a line end or the close.
    const firstLine = lines[0]?.[1] ?? ''
    const delimiterEol = part.delimiterEol === '' && !/^[A-Za-z]/.test(firstLine) ? '\r\n' : part.delimiterEol
    out += part.padding + delimiterEol
    for (const [, line] of lines) out += line + part.eol
    out += part.eol + body
    if (isSized) {
      let junk = noDelimiter(part.beforeDelimiter + part.junk)
      if (!firstAtEnd(junk)) junk += '#'
      out += junk
    } else {
      out += part.beforeDelimiter
    }

    out += written
    if (model.size > 0 || meant !== '') expected.push({headers: Object.fromEntries(model), body: latin1(meant)})
  }

  out += spec.close ? `--${spec.epilogue}` : spec.tail
  return {boundary, stream: latin1(out), expected, closed: spec.close}
}

const builtArb = streamSpecArb.map(build)

/** Random damage to a stream: flipped bits, bytes in and out, line ends doubled or lost, delimiters moved. */
function mutationsArb(boundary: string): fc.Arbitrary<Array<(input: string) => string>> {
  const delimiter = boundary.startsWith('--') ? boundary : `--${boundary}`
  const at = fc.nat({max: 100000})
  const mutation: fc.Arbitrary<(input: string) => string> = fc.oneof(
    fc.tuple(at, fc.integer({min: 0, max: 7})).map(([i, bit]) => (s: string) => {
      if (s.length === 0) return s
      const p = i % s.length
      return s.slice(0, p) + String.fromCharCode(s.charCodeAt(p) ^ (1 << bit)) + s.slice(p + 1)
    }),
    fc.tuple(at, fc.oneof(byteString(6), fc.constantFrom('\r\n', '\n', '\r', delimiter, `${delimiter}--`, '--', 'Content-Length: 3\r\n'))).map(
      ([i, text]) =>
        (s: string) => {
          const p = i % (s.length + 1)
          return s.slice(0, p) + text + s.slice(p)
        },
    ),
    fc.tuple(at, fc.integer({min: 1, max: 8})).map(([i, n]) => (s: string) => {
      const p = i % (s.length + 1)
      return s.slice(0, p) + s.slice(p + n)
    }),
    fc.constantFrom(
      (s: string) => s.replace('\r\n', '\r\n\r\n'),
      (s: string) => s.replace('\r\n', ''),
      (s: string) => s.replaceAll('\r\n', '\n'),
      (s: string) => s.replace('\n', '\r'),
    ),
    at.map((i) => (s: string) => s.slice(0, i % (s.length + 1))),
  )
  return fc.array(mutation, {minLength: 1, maxLength: 4})
}

/** A generated stream, damaged; or bytes from nowhere. */
const garbageArb: fc.Arbitrary<{boundary: string; stream: Buffer}> = fc.oneof(
  builtArb.chain(({boundary, stream}) =>
    mutationsArb(boundary).map((mutations) => ({boundary, stream: latin1(mutations.reduce((s, m) => m(s), stream.toString('latin1')))})),
  ),
  fc.record({boundary: boundaryArb, stream: fc.uint8Array({maxLength: 400}).map((a) => Buffer.from(a))}),
)

// ---------------------------------------------------------------------------
// Chunked transfer coding

/** Chunked coding of the payload in chunks of the given sizes, written in the forms the decoder accepts. */
function chunkEncode(payload: Buffer, sizes: number[], style: {upper: boolean; zeros: boolean; extension: boolean; bareLf: boolean}): Buffer {
  const out: Buffer[] = []
  const eol = style.bareLf ? '\n' : '\r\n'
  const sizeLine = (n: number): string => {
    let hex = n.toString(16)
    if (style.upper) hex = hex.toUpperCase()
    if (style.zeros) hex = `00${hex}`
    return `${hex}${style.extension ? ' ;ext="a;b"' : ''}${eol}`
  }

  for (let at = 0, i = 0; at < payload.length; i++) {
    const n = Math.min(sizes[i % sizes.length], payload.length - at)
    out.push(latin1(sizeLine(n)), payload.subarray(at, at + n), latin1(eol))
    at += n
  }

  out.push(latin1(`${sizeLine(0)}${eol}`))
  return Buffer.concat(out)
}

const chunkStyleArb = fc.record({upper: fc.boolean(), zeros: fc.boolean(), extension: fc.boolean(), bareLf: fc.boolean()})

// ---------------------------------------------------------------------------

describe('properties', function () {
  this.timeout(20000)

  describe('multipart parser against the reference reader', () => {
    it('the reference reads back exactly the parts a writer meant (a check of the reference and the generator)', () => {
      fc.assert(
        fc.property(builtArb, ({boundary, stream, expected, closed}) => {
          assert.deepEqual(reference(boundary, stream), {parts: expected.map(seen), closed})
        }),
        {numRuns: 600},
      )
    })

    it('the generated streams hold what they should: open and sized bodies, delimiters inside sized bodies, bare LF, odd header names', () => {
      const samples = fc.sample(builtArb, {numRuns: 500, seed: 7})
      const all = (test: (b: Built) => boolean): number => samples.filter(test).length
      const delimiterOf = (b: Built) => (b.boundary.startsWith('--') ? b.boundary : `--${b.boundary}`)
      assert.ok(all((b) => b.closed) > 100 && all((b) => !b.closed) > 100)
      assert.ok(all((b) => b.expected.length >= 3) > 50)
      assert.ok(all((b) => b.expected.some((p) => p.headers['content-length'] === undefined && p.body.length > 0)) > 50)
      assert.ok(all((b) => b.expected.some((p) => p.headers['content-length'] !== undefined && p.body.includes(delimiterOf(b)))) > 10)
      assert.ok(all((b) => b.stream.includes('\n\n')) > 50 && all((b) => b.stream.includes('\r\n\r\n')) > 50)
      assert.ok(all((b) => b.expected.some((p) => Object.hasOwn(p.headers, '__proto__') || Object.hasOwn(p.headers, 'constructor'))) > 10)
    })

    it('MultipartParser yields what the reference yields, whatever the split (one byte at a time included), reused input buffers too', () => {
      fc.assert(
        fc.property(builtArb, cutsArb, fc.boolean(), ({boundary, stream, expected, closed}, cuts, transientInput) => {
          const got = run(boundary, split(stream, cuts), {limits: {transientInput}})
          assert.deepEqual(got, {parts: expected.map(seen), closed})
        }),
        {numRuns: 600},
      )
    })

    it('damaged streams and random bytes: MultipartParser still yields what the reference yields, whatever the split', () => {
      fc.assert(
        fc.property(garbageArb, cutsArb, ({boundary, stream}, cuts) => {
          assert.deepEqual(run(boundary, split(stream, cuts)), reference(boundary, stream))
        }),
        {numRuns: 800},
      )
    })

    it('through chunked transfer coding at any chunk size, and any split of the coded bytes', () => {
      fc.assert(
        fc.property(
          builtArb,
          fc.array(fc.integer({min: 1, max: 64}), {minLength: 1, maxLength: 8}),
          chunkStyleArb,
          cutsArb,
          ({boundary, stream, expected, closed}, sizes, style, cuts) => {
            const coded = chunkEncode(stream, sizes, style)
            const parts: Seen[] = []
            const parser = new MultipartParser(boundary, (part) => parts.push(seen(part)))
            const decoder = new ChunkedDecoder((payload) => parser.write(payload))
            for (const piece of split(coded, cuts)) decoder.write(piece)
            assert.equal(decoder.ended, true)
            assert.deepEqual({parts, closed: parser.closed}, {parts: expected.map(seen), closed})
          },
        ),
        {numRuns: 300},
      )
    })
  })

  describe('multipart parser on garbage, with limits', () => {
    const limitsArb = fc.record({maxHeaderSize: fc.integer({min: 1, max: 160}), maxPartSize: fc.integer({min: 0, max: 160})})

    it('throws nothing but MultipartError, holds no more than its limits allow, and ends the same whatever the split', () => {
      fc.assert(
        fc.property(garbageArb, limitsArb, cutsArb, ({boundary, stream}, limits, cuts) => {
          const delimiterLength = (boundary.startsWith('--') ? boundary.length : boundary.length + 2) + 3
          const memoryBound = limits.maxPartSize + Math.max(limits.maxHeaderSize, delimiterLength)
          const whole = run(boundary, [stream], {limits, memoryBound})
          const pieces = run(boundary, split(stream, cuts), {limits, memoryBound})
          assert.deepEqual(pieces, whole)
          for (const part of whole.parts) assert.ok(part.body.length / 2 <= limits.maxPartSize)
          // Limits only ever stop the reading early: what was read is what the reference reads.
          const expected = reference(boundary, stream)
          if (whole.error === undefined) assert.deepEqual(whole, expected)
          else assert.deepEqual(whole.parts, expected.parts.slice(0, whole.parts.length))
        }),
        {numRuns: 800},
      )
    })

    it('any boundary at all (empty, control characters, long) and any bytes: MultipartError or nothing', () => {
      fc.assert(
        fc.property(
          fc.string({unit: 'binary-ascii', maxLength: 80}),
          fc.uint8Array({maxLength: 300}),
          cutsArb,
          limitsArb,
          (boundary, bytes, cuts, limits) => {
            let parser: MultipartParser
            try {
              parser = new MultipartParser(boundary, () => {}, limits)
            } catch (error) {
              assert.ok(error instanceof MultipartError, String(error))
              return
            }

            try {
              for (const piece of split(Buffer.from(bytes), cuts)) parser.write(piece)
            } catch (error) {
              assert.ok(error instanceof MultipartError, String(error))
            }
          },
        ),
        {numRuns: 500},
      )
    })

    it('a header block of exactly maxHeaderSize bytes is accepted, one byte more refused, however it is split', () => {
      fc.assert(
        fc.property(fc.integer({min: 0, max: 60}), fc.boolean(), fc.boolean(), cutsArb, (size, over, bareLf, cuts) => {
          const eol = bareLf ? '\n' : '\r\n'
          const block = `X: ${'v'.repeat(size)}${eol}${eol}`
          const stream = latin1(`--B\r\n${block}body\r\n--B--`)
          const limits = {maxHeaderSize: over ? block.length - 1 : block.length, maxPartSize: 10}
          const got = run('B', split(stream, cuts), {limits})
          assert.equal(got.error !== undefined, over, JSON.stringify({block, limits, got}))
        }),
        {numRuns: 300},
      )
    })
  })

  describe('chunked decoder', () => {
    it('gives back the payload whatever the chunk sizes and the split, and sees the last chunk', () => {
      fc.assert(
        fc.property(fc.uint8Array({maxLength: 500}), fc.array(fc.integer({min: 1, max: 80}), {minLength: 1, maxLength: 6}), chunkStyleArb, cutsArb, (bytes, sizes, style, cuts) => {
          const payload = Buffer.from(bytes)
          const out: Buffer[] = []
          const decoder = new ChunkedDecoder((piece) => out.push(Buffer.from(piece)))
          for (const piece of split(chunkEncode(payload, sizes, style), cuts)) decoder.write(piece)
          assert.equal(decoder.ended, true)
          assert.equal(Buffer.concat(out).toString('hex'), payload.toString('hex'))
        }),
        {numRuns: 300},
      )
    })

    it('damaged or random input: ChunkedError or nothing, the same whatever the split', () => {
      const damaged = fc
        .tuple(fc.uint8Array({maxLength: 200}), fc.array(fc.integer({min: 1, max: 40}), {minLength: 1, maxLength: 4}), chunkStyleArb)
        .chain(([bytes, sizes, style]) => {
          const coded = chunkEncode(Buffer.from(bytes), sizes, style).toString('latin1')
          return mutationsArb('B').map((mutations) => latin1(mutations.reduce((s, m) => m(s), coded)))
        })
      fc.assert(
        fc.property(fc.oneof(damaged, fc.uint8Array({maxLength: 300}).map((a) => Buffer.from(a))), cutsArb, (input, cuts) => {
          const decode = (chunks: Buffer[]): {payload: string; ended: boolean; error?: string} => {
            const out: Buffer[] = []
            const decoder = new ChunkedDecoder((piece) => out.push(Buffer.from(piece)))
            try {
              for (const chunk of chunks) decoder.write(chunk)
            } catch (error) {
              assert.ok(error instanceof ChunkedError, String(error))
              return {payload: Buffer.concat(out).toString('hex'), ended: decoder.ended, error: error.message}
            }

            return {payload: Buffer.concat(out).toString('hex'), ended: decoder.ended}
          }

          assert.deepEqual(decode(split(input, cuts)), decode([input]))
        }),
        {numRuns: 500},
      )
    })
  })

  describe("pattern lists against OpenSSH's match_pattern_list", () => {
    /** Lists of patterns over the alphabet, half of them made from the subject so that matches happen. */
    function listArb(alphabet: string[], subject: string): fc.Arbitrary<string> {
      const chars = Array.from(subject)
      const fromSubject = fc
        .array(fc.constantFrom('keep', 'keep', 'keep', 'star', 'any', 'drop', 'upper'), {minLength: chars.length, maxLength: chars.length})
        .map((edits) =>
          chars
            .map((c, i) => ({keep: c, star: '*', any: '?', drop: '', upper: c.toUpperCase()})[edits[i] as 'keep'])
            .join(''),
        )
      const random = fc.string({unit: fc.constantFrom(...alphabet), maxLength: 8})
      const pattern = fc.tuple(fc.boolean(), fc.oneof(fromSubject, random)).map(([negate, p]) => (negate ? `!${p}` : p))
      return fc.oneof(fc.array(pattern, {minLength: 1, maxLength: 4}).map((list) => list.join(',')), fc.string({unit: fc.constantFrom(...alphabet), maxLength: 12}))
    }

    const subjectOf = (alphabet: string[]): fc.Arbitrary<string> => fc.string({unit: fc.constantFrom(...alphabet), minLength: 1, maxLength: 8})
    const caseAlphabet = ['a', 'b', 'A', 'B', '/', '*', '?', '!', ',', '.']
    const senderAlphabet = ['a', 'b', 'A', 'B', '/', '*', '?', '!', ',', 'ü', 'Ü', '😀']

    it('sender filters: case-sensitive, `?` one character (a code point), as the reference says', () => {
      let matched = 0
      fc.assert(
        fc.property(
          subjectOf(senderAlphabet).chain((subject) => fc.tuple(fc.constant(subject), listArb(senderAlphabet, subject))),
          ([subject, list]) => {
            const expected = matchPatternList(subject, list) === 1
            if (expected) matched++
            assert.equal(compilePatternList(list)(subject), expected, `${JSON.stringify(list)} on ${JSON.stringify(subject)}`)
            // As the server compiles it (an empty list is no filter at all).
            if (list === '') return
            const filter = compileFilter({sender: list})!
            assert.equal(filter(messageOf('text/plain', subject)), expected)
            // No sender is the empty name (the 2007 rule): matched as the reference matches ''.
            assert.equal(filter(messageOf('text/plain', undefined)), matchPatternList('', list) === 1)
          },
        ),
        {numRuns: 3000},
      )
      assert.ok(matched > 300, `only ${matched} of 3000 lists matched`)
    })

    it('type filters: case-insensitive, as the reference says', () => {
      let matched = 0
      fc.assert(
        fc.property(
          subjectOf(caseAlphabet).chain((subject) => fc.tuple(fc.constant(subject), listArb(caseAlphabet, subject))),
          ([subject, list]) => {
            const expected = matchPatternList(subject, list, true) === 1
            if (expected) matched++
            assert.equal(compilePatternList(list.toLowerCase(), {ignoreCase: true})(subject), expected, `${JSON.stringify(list)} on ${JSON.stringify(subject)}`)
            // As the server compiles it, over a message's (lower-cased) essence, with and without a sender filter beside it.
            if (list === '') return
            assert.equal(compileFilter({type: list})!(messageOf(subject.toLowerCase())), expected)
            assert.equal(compileFilter({type: list, sender: '*'})!(messageOf(subject.toLowerCase(), 'x')), expected)
          },
        ),
        {numRuns: 3000},
      )
      assert.ok(matched > 300, `only ${matched} of 3000 lists matched`)
    })

    it('characters special to regular expressions are literal in patterns (`-` as in `application/x-*` too)', () => {
      const alphabet = ['a', '-', '.', '+', '(', ')', '[', ']', '{', '}', '|', '^', '$', '\\', '*', '?', '!', ',', '/']
      fc.assert(
        fc.property(
          subjectOf(alphabet.filter((c) => c !== ',')).chain((subject) => fc.tuple(fc.constant(subject), listArb(alphabet, subject))),
          ([subject, list]) => {
            let got: boolean | string
            try {
              got = compilePatternList(list)(subject)
            } catch (error) {
              got = String(error)
            }

            assert.equal(got, matchPatternList(subject, list) === 1, `${JSON.stringify(list)} on ${JSON.stringify(subject)}`)
          },
        ),
        {numRuns: 2000},
      )
    })

    // The matcher cuts patterns at `*` and finds the pieces between with indexOf or a bit-parallel
    // search: these lists aim at where that could go wrong. Subjects are never empty, as above: on the
    // empty string a trailing comma is the one place the matcher departs from the reference (see pattern.ts).

    /** Patterns made of slices of the subject (which may cut a surrogate pair in two), `*`, `**`, `?`, and stray characters. */
    function piecesListArb(alphabet: string[], subject: string): fc.Arbitrary<string> {
      const slice = fc.tuple(fc.nat({max: subject.length}), fc.nat({max: subject.length})).map(([a, b]) => subject.slice(Math.min(a, b), Math.max(a, b)))
      const token = fc.oneof(slice, slice, fc.constantFrom('*', '**', '?', '??', '*?', '?*', '*?*'), fc.constantFrom(...alphabet))
      const pattern = fc.tuple(fc.boolean(), fc.array(token, {maxLength: 6})).map(([negate, tokens]) => (negate ? '!' : '') + tokens.join(''))
      return fc.array(pattern, {minLength: 1, maxLength: 3}).map((list) => list.join(','))
    }

    it('surrogate pairs and lone halves, `**`, empty segments, `?` at either end: as the reference says', () => {
      // Half a pair in a pattern must not match half of a pair in the subject, as under the `u` flag.
      const alphabet = ['a', 'b', 'é', '😀', '😁', '\uD83D', '\uDE00', '\uDE01']
      let matched = 0
      fc.assert(
        fc.property(
          subjectOf(alphabet).chain((subject) => fc.tuple(fc.constant(subject), piecesListArb(alphabet, subject))),
          ([subject, list]) => {
            const expected = matchPatternList(subject, list) === 1
            if (expected) matched++
            assert.equal(compilePatternList(list)(subject), expected, `${JSON.stringify(list)} on ${JSON.stringify(subject)}`)
          },
        ),
        {numRuns: 5000},
      )
      assert.ok(matched > 150, `only ${matched} of 5000 lists matched`)
    })

    it('long subjects and long runs of `?` (over 32 characters: several words of search state): as the reference says', () => {
      // Patterns from the subject, its characters kept or made `?`, seldom a `*`; half of them then damaged in one place.
      const edit = {k: (c: string) => c, q: () => '?', s: () => '*'}
      const damage = (pattern: string, at: number | null): string => {
        if (at === null) return pattern
        const i = at % pattern.length
        return pattern.slice(0, i) + (pattern[i] === 'a' ? 'b' : 'a') + pattern.slice(i + 1)
      }
      const fromSubject = (subject: string): fc.Arbitrary<string> =>
        fc
          .tuple(fc.array(fc.constantFrom(...'kkkkkkkqqqqqs'), {minLength: subject.length, maxLength: subject.length}), fc.option(fc.nat(), {freq: 2}))
          .map(([edits, at]) => damage(Array.from(subject, (c, i) => edit[edits[i] as keyof typeof edit](c)).join(''), at))
      const longArb = fc
        .string({unit: fc.constantFrom('a', 'b', 'a', '😀'), minLength: 30, maxLength: 200})
        .chain((subject) => fc.tuple(fc.constant(subject), fromSubject(subject)))
      let matched = 0
      fc.assert(
        fc.property(longArb, ([subject, list]) => {
          const expected = matchPatternList(subject, list) === 1
          if (expected) matched++
          assert.equal(compilePatternList(list)(subject), expected, `${JSON.stringify(list)} on ${JSON.stringify(subject)}`)
        }),
        {numRuns: 2000},
      )
      assert.ok(matched > 200 && matched < 1800, `${matched} of 2000 lists matched`)
    })

    it('ignoreCase folds ASCII letters only, as OpenSSH does (media types are ASCII)', () => {
      const alphabet = ['a', 'A', 'k', 'K', '\u212a', 'é', 'É', 'ß', '*', '?', '!', ',']
      fc.assert(
        fc.property(
          subjectOf(alphabet.filter((c) => c !== ',')).chain((subject) => fc.tuple(fc.constant(subject), listArb(alphabet, subject))),
          ([subject, list]) => {
            const expected = matchPatternList(subject, list, true) === 1
            assert.equal(compilePatternList(list, {ignoreCase: true})(subject), expected, `${JSON.stringify(list)} on ${JSON.stringify(subject)}`)
          },
        ),
        {numRuns: 2000},
      )
    })
  })

  describe('media types against content-type', () => {
    /** content-type's verdict on a Content-Type value (as a publish trims it): its essence, or undefined when it throws. */
    const referenceEssence = (value: string): string | undefined => {
      try {
        return contentType.parse(value.trim()).type
      } catch {
        return undefined
      }
    }

    // Pieces of media types, valid and not: token characters, separators in and out of place,
    // whitespace of several kinds, quoted strings with escapes, bytes past ASCII and past latin1.
    const tokenArb = fc.string({unit: fc.constantFrom('a', 'Z', '0', '-', '+', '.', '!', '#', '~', '`', '|', '^', '_', '*', "'"), minLength: 1, maxLength: 6})
    const oddArb = fc.constantFrom('', ' ', '  ', '\t', '\u000b', '\n', '\u00a0', '\u2028', ';', '=', '/', '"', '\\', ',', '(', '@', 'é', '\u0100', '\u0000', '\u007f', '😀')
    const quotedArb = fc
      .array(fc.oneof(fc.constantFrom('a', ' ', ';', '=', '\\"', '\\\\', '\u000b', 'é', '\u00ff', '\\é', '\t', '\u0100', '\u007f', '"', '\\'), tokenArb), {maxLength: 5})
      .map((parts) => `"${parts.join('')}"`)
    const spacesArb = fc.constantFrom('', '', ' ', '  ', '\t', ' \t')
    /** Now and then something out of place; mostly nothing, so that a good share of values is valid. */
    const flawArb = fc.oneof({arbitrary: fc.constant(''), weight: 12}, {arbitrary: oddArb, weight: 1})
    const paramArb = fc
      .tuple(spacesArb, tokenArb, spacesArb, spacesArb, fc.oneof({arbitrary: tokenArb, weight: 3}, {arbitrary: quotedArb, weight: 2}, {arbitrary: oddArb, weight: 1}), spacesArb, flawArb)
      .map(([a, name, b, c, value, d, flaw]) => `;${a}${name}${b}=${c}${value}${d}${flaw}`)
    const slashArb = fc.oneof({arbitrary: fc.constant('/'), weight: 12}, {arbitrary: fc.constantFrom('', '//', ' /', '/ '), weight: 1})
    const typeArb = fc.tuple(spacesArb, tokenArb, slashArb, tokenArb, spacesArb).map(([a, t, slash, s, b]) => `${a}${t}${slash}${s}${b}`)
    const valueArb = fc.oneof(
      {arbitrary: fc.tuple(typeArb, fc.array(paramArb, {maxLength: 4}), flawArb).map(([type, params, tail]) => type + params.join('') + tail), weight: 4},
      {arbitrary: fc.array(fc.oneof(tokenArb, oddArb, paramArb), {maxLength: 8}).map((parts) => parts.join('')), weight: 1},
      {arbitrary: fc.string({unit: 'binary', maxLength: 30}), weight: 1},
    )

    it("mediaTypeOrReason accepts what content-type's parse accepts, with the same essence, and refuses the rest", () => {
      let accepted = 0
      let refused = 0
      fc.assert(
        fc.property(valueArb, (value) => {
          const reference = referenceEssence(value)
          const result = mediaTypeOrReason(value)
          if (reference === undefined) {
            refused++
            assert.equal(typeof result, 'string', `${JSON.stringify(value)}: content-type refuses it`)
          } else {
            accepted++
            assert.deepEqual(result, {full: value.trim(), essence: reference}, `${JSON.stringify(value)}: content-type reads ${reference}`)
          }
        }),
        {numRuns: 3000},
      )
      // Both sides of the verdict were tried, or the comparison says little.
      assert.ok(accepted > 300 && refused > 300, `accepted ${accepted}, refused ${refused}`)
    })

    it('a hostile value of 8,000 characters is judged at once (no backtracking)', () => {
      for (const value of [`a/b; a="${'\\x'.repeat(4000)}`, `a/b;a=${'\\'.repeat(8000)}`, `a/b${' '.repeat(8000)}x`, `a/b${'; a=b '.repeat(1300)};`, `a/b${';a=""'.repeat(2000)}"`]) {
        const started = performance.now()
        assert.equal(typeof mediaTypeOrReason(value), 'string')
        assert.equal(referenceEssence(value), undefined)
        // Generous: a backtracking pattern takes seconds to years here, a linear one microseconds.
        assert.ok(performance.now() - started < 1000, 'judged within a second')
      }
    })
  })

  describe('channel names', () => {
    /** Names within the rules: no C0 control characters or DEL, at most 255 bytes of UTF-8. */
    const nameArb = fc
      .oneof(
        fc.string({unit: 'binary', maxLength: 40}),
        fc.string({unit: fc.constantFrom('a', 'Z', '/', '%', '?', '#', ' ', '+', '&', '=', ';', '.', '~', 'é', '\u0085', '\u00a0', '😀', '\ufeff', '\u2028'), maxLength: 40}),
        fc.string({unit: 'grapheme', minLength: 100, maxLength: 300}),
      )
      .map((name) => name.replace(/[\u0000-\u001f\u007f]/g, ''))
      .map((name) => {
        let out = name
        while (Buffer.byteLength(out) > MAX_CHANNEL_BYTES) out = Array.from(out).slice(0, -1).join('')
        return out
      })

    it('decodeChannel(channelPath(name)) is the name, for any name within the rules', () => {
      fc.assert(
        fc.property(nameArb, (name) => {
          const path = channelPath(name)
          assert.ok(path.startsWith(BUS_PREFIX))
          assert.ok(/^[\x21-\x7e]*$/.test(path), `${path} is printable ASCII`)
          assert.equal(decodeChannel(path.slice(BUS_PREFIX.length)), name)
          // A URL parser keeps it as it is: no `?` or `#` cuts it short. (Dot segments, `a/../b`, are
          // another matter: WHATWG URL parsers, curl and browsers resolve them, so such a channel
          // cannot be reached from them; left out here, see the report of issue 6.)
          if (!name.split('/').some((segment) => segment === '.' || segment === '..')) {
            assert.equal(new URL(path, 'http://localhost').pathname, path)
          }
        }),
        {numRuns: 1000},
      )
    })

    it('any request path: decoded as a strict decoder says, or refused with ChannelError and nothing else', () => {
      // Bytes as they arrive (Node hands the request target over as latin1), made of what troubles a decoder.
      const piece = fc.oneof(
        fc.string({unit: fc.constantFrom('a', '/', '-', '.', '~', '+', ' '), maxLength: 3}),
        fc.tuple(fc.constantFrom(...'0123456789abcdefABCDEFgG%/ '), fc.constantFrom(...'0123456789abcdefABCDEFgG%/ ')).map(([a, b]) => `%${a}${b}`),
        fc.constantFrom('%', '%2', '%%', '%g0'),
        fc.integer({min: 0, max: 255}).map((b) => String.fromCharCode(b)),
        fc.integer({min: 0, max: 255}).map((b) => `%${b.toString(16).padStart(2, '0')}`),
        fc.string({unit: 'binary', maxLength: 2}).map((s) => Buffer.from(s).toString('latin1')),
        fc.string({unit: 'binary', maxLength: 2}).map((s) => encodeURIComponent(s)),
        // Invalid UTF-8: stray continuation, overlong, a surrogate, past U+10FFFF, cut short.
        fc.constantFrom('%80', '%C0%80', '%ED%A0%80', '%F4%90%80%80', '%E2%82', '%F0%9F%98', '%FF', '\xc3', '%C3%28', '%E0%80%AF'),
        fc.constantFrom('%09', '%7F', '%7f', '%00', '%1F', '\t', '\x7f', '%C2%85', '%20'),
      )
      // Long valid names around the 255-byte limit, of characters of one to four bytes, percent-encoded or raw.
      const long = fc
        .tuple(fc.string({unit: fc.constantFrom('a', 'é', '€', '😀', '/'), minLength: 60, maxLength: 260}), fc.boolean())
        .map(([name, raw]) => (raw ? Buffer.from(name).toString('latin1') : encodeURIComponent(name)))
      const rawArb = fc.oneof(
        fc.array(piece, {maxLength: 12}).map((p) => p.join('')),
        fc.array(piece, {minLength: 60, maxLength: 120}).map((p) => p.join('')),
        long,
      )
      let accepted = 0
      let refused = 0
      fc.assert(
        fc.property(rawArb, (raw) => {
          const expected = strictDecode(raw)
          let got: string | {refused: true}
          try {
            got = decodeChannel(raw)
          } catch (error) {
            assert.ok(error instanceof ChannelError, `${JSON.stringify(raw)}: ${error}`)
            got = {refused: true}
          }

          if (typeof got === 'string') accepted++
          else refused++
          assert.deepEqual(got, expected ?? {refused: true}, JSON.stringify(raw))
        }),
        {numRuns: 3000},
      )
      assert.ok(accepted > 150 && refused > 150, `accepted ${accepted}, refused ${refused}`)
    })

    describe('through a real server', () => {
      after(stopAll)

      it('a message published to channelPath(name) reaches a subscriber of /msgbus/ with Content-Location channelPath(name)', async function () {
        this.timeout(20000)
        const server = await startBus()
        const subscription = await Subscription.open(server, '/msgbus/')
        let count = 0
        await fc.assert(
          fc.asyncProperty(
            // Not dot segments (`.`, `a/..`): URL parsers resolve them, `%2E` included (WHATWG), so no URL reaches such a channel.
            nameArb.filter((name) => name !== '' && !name.split('/').some((segment) => segment === '.' || segment === '..')),
            async (name) => {
              const path = channelPath(name)
              const reply = await publish(server, path.slice(BUS_PREFIX.length), `message ${count}`)
              assert.equal(reply.status, 204, `${JSON.stringify(name)} -> ${path}: ${reply.body}`)
              count++
              const parts = await subscription.waitParts(count)
              const last = parts.at(-1)!
              assert.equal(last.body.toString(), `message ${count - 1}`)
              assert.equal(last.headers['content-location'], path, JSON.stringify(name))
            },
          ),
          {numRuns: 30},
        )
        subscription.close()
      })
    })
  })
})

// ---------------------------------------------------------------------------

function messageOf(essence: string, sender?: string): Message {
  return {id: '1-1', channel: 'c', type: essence, essence, sender, body: Buffer.alloc(0), time: 0, serial: 0}
}

/**
 * The channel a raw path names, or undefined when it must be refused:
 * `%` with two hex digits, the bytes well-formed UTF-8 (RFC 3629: no
 * overlongs, no surrogates, nothing past U+10FFFF), no C0 control or DEL,
 * at most 255 bytes.
 */
function strictDecode(raw: string): string | undefined {
  const bytes: number[] = []
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== '%') {
      bytes.push(raw.charCodeAt(i))
      continue
    }

    const hex = raw.slice(i + 1, i + 3)
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined
    bytes.push(Number.parseInt(hex, 16))
    i += 2
  }

  if (bytes.length > MAX_CHANNEL_BYTES) return undefined
  const codePoints: number[] = []
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]
    let length: number
    let min: number
    if (b < 0x80) [length, min] = [1, 0]
    else if (b >= 0xc2 && b <= 0xdf) [length, min] = [2, 0x80]
    else if (b >= 0xe0 && b <= 0xef) [length, min] = [3, 0x800]
    else if (b >= 0xf0 && b <= 0xf4) [length, min] = [4, 0x10000]
    else return undefined
    if (i + length > bytes.length) return undefined
    let cp = length === 1 ? b : b & (0xff >> (length + 1))
    for (let k = 1; k < length; k++) {
      if ((bytes[i + k] & 0xc0) !== 0x80) return undefined
      cp = (cp << 6) | (bytes[i + k] & 0x3f)
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return undefined
    if (cp < 0x20 || cp === 0x7f) return undefined
    codePoints.push(cp)
    i += length
  }

  return String.fromCodePoint(...codePoints)
}
