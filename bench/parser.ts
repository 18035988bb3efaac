/**
 * `npm run bench:parser`: throughput of the client's multipart parser.
 *
 * Builds a stream of messages framed exactly as our server frames them
 * (MultipartEncoder's raw form: Content-Type, Content-Length,
 * Content-Location, Message-ID, body, delimiter), by default 64 MiB of
 * 1 KiB bodies, and feeds it to MultipartParser in 64 KiB and 1.5 KiB
 * slices, several rounds each; then the same through MultipartStream
 * (the Transform and async iterator the library exports). Prints the
 * median MB/s (10^6 bytes of stream per second, and of the bodies in it)
 * and messages/s, against the target of 200 MB/s.
 *
 *     npm run bench:parser
 *     npm run bench:parser -- --size 16 --body 4096 --rounds 7 --chunks 65536,1536,512
 *     node --cpu-prof --import tsx/esm bench/parser.ts --no-stream   # then bench/profile.ts
 *
 * It is a script that prints figures, not a test: it exits non-zero only when
 * the parser returns the wrong number of messages or wrong bytes.
 */
import {Readable, Writable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {parseArgs} from 'node:util'
import type {Message} from '../src/lib/bus/message.js'
import {MultipartStream} from '../src/lib/client/multipart-stream.js'
import {MultipartEncoder} from '../src/lib/protocol/multipart-encoder.js'
import {MultipartParser} from '../src/lib/protocol/multipart-parser.js'

const TARGET_MBPS = 200

const {values} = parseArgs({
  options: {
    size: {type: 'string', default: '64'},
    body: {type: 'string', default: '1024'},
    rounds: {type: 'string', default: '5'},
    chunks: {type: 'string', default: '65536,1536'},
    'no-stream': {type: 'boolean', default: false},
    help: {type: 'boolean', short: 'h', default: false},
  },
})

if (values.help) {
  console.log(`usage: npm run bench:parser -- [--size MiB] [--body BYTES] [--rounds N] [--chunks 65536,1536] [--no-stream]`)
  process.exit(0)
}

const sizeMiB = Number(values.size)
const bodySize = Number(values.body)
const rounds = Number(values.rounds)
const chunkSizes = values.chunks.split(',').map(Number)
if (![sizeMiB, bodySize, rounds, ...chunkSizes].every((n) => Number.isFinite(n) && n > 0)) {
  console.error('bench:parser: --size, --body, --rounds and --chunks take positive numbers')
  process.exit(2)
}

/** The stream: the opening delimiter, then framed messages up to the size asked for. */
function buildStream(): {stream: Buffer; messages: number; bodies: Buffer[]} {
  const encoder = new MultipartEncoder()
  const frames: Buffer[] = [encoder.open.raw]
  const bodies: Buffer[] = []
  let total = encoder.open.raw.length
  const start = Date.now()
  // A handful of distinct bodies, so a mistake in a body's bytes is seen.
  for (let i = 0; i < 16; i++) bodies.push(Buffer.alloc(bodySize, `body ${i} `.padEnd(16, '.')))
  for (let seq = 0; total < sizeMiB * 1024 * 1024; seq++) {
    const message: Message = {
      id: `${start + (seq >> 10)}-${seq}`,
      time: start,
      serial: seq,
      channel: 'bench/parser',
      type: 'application/octet-stream',
      essence: 'application/octet-stream',
      body: bodies[seq % bodies.length],
    }
    const {raw} = encoder.frame(message)
    frames.push(raw)
    total += raw.length
  }

  return {stream: Buffer.concat(frames, total), messages: frames.length - 1, bodies}
}

function slices(stream: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at < stream.length; at += size) out.push(stream.subarray(at, at + size))
  return out
}

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function check(what: string, got: number, expected: number): void {
  if (got !== expected) {
    console.error(`bench:parser: ${what}: ${got} messages, expected ${expected}`)
    process.exit(1)
  }
}

const below: string[] = []

/** One line: median MB/s of the stream (and of the bodies in it), median messages/s, and every round. */
function report(label: string, bytes: number, messages: number, seconds: number[]): void {
  const mbps = seconds.map((s) => bytes / 1e6 / s)
  const m = median(mbps)
  const bodyMbps = (m * messages * bodySize) / bytes
  const line = [
    label.padEnd(34),
    `${m.toFixed(0).padStart(5)} MB/s`,
    `(${bodyMbps.toFixed(0)} MB/s of bodies)`,
    `${(median(seconds.map((s) => messages / s)) / 1000).toFixed(0).padStart(5)}k msgs/s`,
    `  rounds: ${mbps.map((v) => v.toFixed(0)).join(' ')} MB/s`,
  ]
  console.log(line.join('  '))
  if (m < TARGET_MBPS) below.push(label)
}

async function main(): Promise<void> {
  const {stream, messages, bodies} = buildStream()
  console.log(
    `bench:parser: ${(stream.length / 1024 / 1024).toFixed(1)} MiB, ${messages} messages of ${bodySize} bytes ` +
      `(${(stream.length / messages).toFixed(0)} bytes a part on the wire), ${rounds} rounds, node ${process.version}`,
  )

  const boundary = boundaryOfStream(stream)
  for (const size of chunkSizes) {
    const chunks = slices(stream, size)
    const seconds: number[] = []
    // One warm-up round, not counted.
    for (let round = -1; round < rounds; round++) {
      let count = 0
      let bytes = 0
      const parser = new MultipartParser(boundary, (part) => {
        count++
        bytes += part.body.length
      })
      const started = process.hrtime.bigint()
      for (const chunk of chunks) parser.write(chunk)
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9
      check(`MultipartParser, ${size}-byte chunks`, count, messages)
      if (bytes !== messages * bodySize) throw new Error(`body bytes ${bytes}, expected ${messages * bodySize}`)
      if (round >= 0) seconds.push(elapsed)
    }

    report(`MultipartParser, ${formatChunk(size)} chunks`, stream.length, messages, seconds)
  }

  // Spot-check the bytes once: every body as built.
  {
    let i = 0
    const parser = new MultipartParser(boundary, (part) => {
      if (!part.body.equals(bodies[i % bodies.length])) throw new Error(`message ${i}: body differs`)
      i++
    })
    for (const chunk of slices(stream, 1536)) parser.write(chunk)
    check('byte check', i, messages)
  }

  if (!values['no-stream']) {
    for (const size of chunkSizes) {
      const chunks = slices(stream, size)
      const seconds: number[] = []
      for (let round = -1; round < rounds; round++) {
        let count = 0
        const sink = new Writable({
          objectMode: true,
          highWaterMark: 1024,
          write(_message, _encoding, callback) {
            count++
            callback()
          },
        })
        const started = process.hrtime.bigint()
        await pipeline(Readable.from(chunks, {objectMode: false}), new MultipartStream(boundary), sink)
        const elapsed = Number(process.hrtime.bigint() - started) / 1e9
        check(`MultipartStream, ${size}-byte chunks`, count, messages)
        if (round >= 0) seconds.push(elapsed)
      }

      report(`MultipartStream, ${formatChunk(size)} chunks`, stream.length, messages, seconds)
    }
  }

  console.log(below.length === 0 ? `target >= ${TARGET_MBPS} MB/s: met` : `target >= ${TARGET_MBPS} MB/s: missed by ${below.join('; ')}`)
}

/** The boundary: the stream opens with `--<boundary>\r\n`. */
function boundaryOfStream(stream: Buffer): string {
  const end = stream.indexOf('\r\n')
  return stream.toString('latin1', 2, end)
}

function formatChunk(size: number): string {
  return size % 512 === 0 ? `${size / 1024} KiB` : `${size} B`
}

await main()
