/**
 * `npm run bench:history`: what the history of issue 14 costs, and how fast
 * a replay goes. A script that prints figures, not a test.
 *
 * Each part runs `msgbus serve` in its own process (the server's CPU time and
 * memory read from /proc, its live heap from a full collection on demand);
 * the publishers (pipelined keep-alive connections) and the subscribers (raw
 * sockets that count what they receive) are in this process. Every figure is
 * the median of --rounds rounds.
 *
 *   1. cost: the server's CPU time per publish and per delivery with the
 *      history on (the defaults, the log kept full so that each publish also
 *      drops one) and off (--history 0), side by side, to 100 subscribers
 *      (raw format); the two servers run at once and take turns, round by
 *      round, so the machine's load falls on both alike: the median of the
 *      rounds' on/off ratios is the figure. Target: ≤ 1.10.
 *   2. replay: 100,000 kept messages of 64 B to one subscriber with
 *      ?since=all&poll=1 (multipart): messages/s, and the server's RSS
 *      before and at its peak during the replay (VmRSS sampled every 2 ms).
 *   3. reconnect: 1,000 SSE subscribers reconnecting at once with
 *      Last-Event-ID, each replaying 1,000 messages: the time until all
 *      have their backlog, and messages/s.
 *   4. memory: the server's heap (after a full collection), its array
 *      buffers and RSS before and after 100,000 messages of 64 B are kept:
 *      bytes per message beyond its body.
 *
 *   npm run bench:history
 *   npm run bench:history -- --parts cost --rounds 7
 *   npm run bench:history -- --no-build --json
 *
 * Everything runs on loopback, is bounded in time, and stops its children on exit.
 */
import {connect, type Socket} from 'node:net'
import {performance} from 'node:perf_hooks'
import {parseArgs} from 'node:util'
import {exitOnHelp, numberOption, UsageError} from './args.js'
import {Serve} from '../tools/load-run.js'
import {cpuSeconds, establishedOn, statusBytes} from '../tools/proc.js'
import {log, prepareCli, stop} from '../tools/processes.js'
import {Publisher} from '../tools/publisher.js'
import {until} from '../tools/wait.js'

const PARTS = ['cost', 'replay', 'reconnect', 'memory'] as const
type Part = (typeof PARTS)[number]

const HELP = `usage: npm run bench:history -- [options]

Parts (64-byte bodies):
  cost       server CPU per publish and per delivery, history on (defaults) vs off
             (--history 0), 100 subscribers      target: on/off ≤ 1.10
  replay     100,000 kept messages to one subscriber, ?since=all&poll=1: messages/s,
             the server's peak RSS during it
  reconnect  1,000 SSE subscribers reconnecting at once (Last-Event-ID), 1,000
             messages of backlog each: time until all have it, messages/s
  memory     bytes per kept message beyond its body (heap after a full GC, RSS)

Options:
  --parts LIST      comma-separated parts (default: all)
  --rounds N        rounds per part; figures are medians (default 5)
  --messages N      messages published per round in the cost part (default 3000)
  --subscribers N   subscribers in the cost part (default 100)
  --no-build        use dist/ as it is instead of building it first
  --json            also print the results as JSON
`

interface Options {
  parts: Part[]
  rounds: number
  messages: number
  subscribers: number
  build: boolean
  json: boolean
}

function parseOptions(): Options {
  const {values} = parseArgs({
    options: {
      parts: {type: 'string'},
      rounds: {type: 'string'},
      messages: {type: 'string'},
      subscribers: {type: 'string'},
      'no-build': {type: 'boolean'},
      json: {type: 'boolean'},
      help: {type: 'boolean', short: 'h'},
    },
    strict: true,
  })
  exitOnHelp(values.help, HELP)
  const parts = (values.parts ?? PARTS.join(','))
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
  for (const part of parts) if (!(PARTS as readonly string[]).includes(part)) throw new UsageError(`--parts: no part ${JSON.stringify(part)} (known: ${PARTS.join(', ')})`)
  return {
    parts: parts as Part[],
    rounds: numberOption(values.rounds, 'rounds', 5, 1),
    messages: numberOption(values.messages, 'messages', 3000, 100),
    subscribers: numberOption(values.subscribers, 'subscribers', 100, 1),
    build: !values['no-build'],
    json: values.json ?? false,
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].filter((value) => !Number.isNaN(value)).sort((a, b) => a - b)
  return sorted.length === 0 ? Number.NaN : sorted[Math.floor((sorted.length - 1) / 2)]!
}

const MiB = 1024 * 1024
const LIFETIME_MS = 30 * 60_000
/** Every body: 64 bytes, no newline, so a raw stream's message is 65 bytes, 71 as a chunk (`41\r\n...\r\n`). */
const BODY = Buffer.alloc(64, 'm')
const RAW_CHUNK = 71

// ---------------------------------------------------------------- clients

/**
 * A raw-socket subscriber that counts what arrives after the head: bytes,
 * and occurrences of `marker` (found across reads too). It keeps nothing.
 */
class Counter {
  bytes = 0
  count = 0
  closed = false
  private inHead = true
  private head = ''
  private carry = ''

  constructor(
    readonly socket: Socket,
    private readonly marker?: string,
  ) {
    socket.setEncoding('latin1')
    socket.on('data', (text: string) => this.take(text))
    socket.on('close', () => (this.closed = true))
    socket.on('error', () => {})
  }

  static open(port: number, request: string, marker?: string): Counter {
    const socket = connect(port, '127.0.0.1')
    const counter = new Counter(socket, marker)
    socket.once('connect', () => socket.write(request))
    return counter
  }

  get answered(): boolean {
    return !this.inHead
  }

  private take(text: string): void {
    if (this.inHead) {
      this.head += text
      const end = this.head.indexOf('\r\n\r\n')
      if (end < 0) return
      if (!this.head.startsWith('HTTP/1.1 200')) throw new Error(`a subscription answered ${JSON.stringify(this.head.slice(0, 200))}`)
      this.inHead = false
      text = this.head.slice(end + 4)
      this.head = ''
    }

    this.bytes += text.length
    if (this.marker === undefined) return
    const searched = this.carry + text
    for (let at = searched.indexOf(this.marker); at >= 0; at = searched.indexOf(this.marker, at + this.marker.length)) this.count++
    this.carry = searched.slice(-(this.marker.length - 1))
  }

  close(): void {
    this.socket.destroy()
  }
}

const get = (path: string, headers: Record<string, string> = {}): string =>
  `GET ${path} HTTP/1.1\r\nHost: bench\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('')}\r\n`

/** Publishes `count` bodies on `channel` over `connections` pipelined connections; resolves with the ids, in the order of each connection. */
async function publishMany(port: number, channel: string, count: number, connections = 4): Promise<string[]> {
  const publishers = await Promise.all(Array.from({length: connections}, () => Publisher.open(port)))
  const share = Math.ceil(count / connections)
  const ids = await Promise.all(
    publishers.map((publisher, i) => publisher.send(channel, Array.from({length: Math.max(0, Math.min(share, count - i * share))}, () => BODY))),
  )
  for (const publisher of publishers) publisher.close()
  return ids.flat()
}

async function startServer(runJs: string, args: string[]): Promise<Serve> {
  const serve = await Serve.start(runJs, args, LIFETIME_MS)
  if (serve.warnings.length > 0) log(`server warnings: ${serve.warnings.join('; ')}`)
  return serve
}

async function stopServer(serve: Serve): Promise<void> {
  await stop(serve.cli.child, 5000)
}

// ---------------------------------------------------------------- 1. cost

interface CostSide {
  label: string
  args: string[]
  serve?: Serve
  subscribers: Counter[]
  cpuPerPublish: number[]
  cpuPerDelivery: number[]
  publishesPerSecond: number[]
}

async function costPart(runJs: string, options: Options): Promise<Record<string, number>> {
  const sides: CostSide[] = [
    {label: 'history on (defaults)', args: [], subscribers: [], cpuPerPublish: [], cpuPerDelivery: [], publishesPerSecond: []},
    {label: 'history off (--history 0)', args: ['--history', '0'], subscribers: [], cpuPerPublish: [], cpuPerDelivery: [], publishesPerSecond: []},
  ]
  try {
    for (const side of sides) {
      side.serve = await startServer(runJs, side.args)
      const port = side.serve.port
      // The log full (10,000), so that each publish also drops the oldest, as it will for good; then the subscribers.
      await publishMany(port, 'fill', 10_000)
      side.subscribers = Array.from({length: options.subscribers}, () => Counter.open(port, get('/msgbus/cost?format=raw')))
      await until(() => side.subscribers.every((s) => s.answered), 'the subscribers to be answered', 30_000)
      // Warm-up: the delivery code compiled.
      await publishMany(port, 'cost', 1000)
      await until(() => side.subscribers.every((s) => s.bytes >= 1000 * RAW_CHUNK), 'the warm-up to arrive', 60_000)
    }

    for (let round = 0; round < options.rounds; round++) {
      // Both sides each round, in turns, the first one alternating.
      for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
        const serve = side.serve!
        const before = side.subscribers.map((s) => s.bytes)
        const cpu = cpuSeconds(serve.pid)
        const started = performance.now()
        await publishMany(serve.port, 'cost', options.messages)
        await until(
          () => side.subscribers.every((s, i) => s.bytes - before[i]! >= options.messages * RAW_CHUNK),
          () => `${options.messages} messages to reach every subscriber`,
          {timeoutMs: 120_000, everyMs: 5},
        )
        const seconds = (performance.now() - started) / 1000
        const used = cpuSeconds(serve.pid) - cpu
        side.cpuPerPublish.push((used / options.messages) * 1e6)
        side.cpuPerDelivery.push((used / (options.messages * options.subscribers)) * 1e6)
        side.publishesPerSecond.push(options.messages / seconds)
      }

      log(`cost: round ${round + 1} of ${options.rounds}`)
    }
  } finally {
    for (const side of sides) {
      for (const subscriber of side.subscribers) subscriber.close()
      if (side.serve) await stopServer(side.serve)
    }
  }

  // Each round's pair ran back to back, under the same load: their ratio is the steadier figure.
  const [on, off] = sides as [CostSide, CostSide]
  const ratios = on.cpuPerPublish.map((cpu, i) => cpu / off.cpuPerPublish[i]!)
  return {
    onPublishUs: median(on.cpuPerPublish),
    offPublishUs: median(off.cpuPerPublish),
    onDeliveryUs: median(on.cpuPerDelivery),
    offDeliveryUs: median(off.cpuPerDelivery),
    onPublishesPerSecond: median(on.publishesPerSecond),
    offPublishesPerSecond: median(off.publishesPerSecond),
    ratio: median(on.cpuPerPublish) / median(off.cpuPerPublish),
    ratioOfRounds: median(ratios),
    ratioMin: Math.min(...ratios),
    ratioMax: Math.max(...ratios),
  }
}

// ---------------------------------------------------------------- 2. replay and 4. memory

/**
 * One server: its memory with nothing kept and with 100,000 messages kept
 * (the memory part: one measurement, its figures barely move), then
 * --rounds subscribers one after another, each replaying them all (the
 * replay part).
 */
async function keptPart(runJs: string, options: Options, parts: Part[]): Promise<Record<string, number>> {
  const kept = 100_000
  const figures: Record<string, number[]> = {replayPerSecond: [], replaySeconds: [], rssBefore: [], rssPeak: []}
  const serve = await startServer(runJs, ['--history', String(kept)])
  try {
    // A first publish and a poll before the baseline, so what a server allocates once is in it.
    await publishMany(serve.port, 'warm', 1, 1)
    const warm = Counter.open(serve.port, get('/msgbus/warm?since=all&poll=1'))
    await until(() => warm.closed, 'the warm-up poll', 30_000)
    const before = await serve.probe()
    const rssBefore = serve.rss()
    await publishMany(serve.port, 'kept', kept)
    const after = await serve.probe()
    const rssAfter = serve.rss()
    // The warm-up message is kept too, from before the baseline.
    figures.heapPerMessage = [(after.heap - before.heap) / kept]
    figures.buffersPerMessage = [(after.arrayBuffers - before.arrayBuffers) / kept - BODY.length]
    figures.rssPerMessage = [(rssAfter - rssBefore) / kept - BODY.length]
    figures.heapBefore = [before.heap]
    figures.heapAfter = [after.heap]

    for (let round = 0; parts.includes('replay') && round < options.rounds; round++) {
      const rss = serve.rss()
      let peak = rss
      const sampler = setInterval(() => {
        try {
          peak = Math.max(peak, statusBytes(serve.pid, 'VmRSS'))
        } catch {
          // gone
        }
      }, 2)
      const started = performance.now()
      const reader = Counter.open(serve.port, get('/msgbus/kept?since=all&poll=1'), '\r\nMessage-ID: ')
      await until(() => reader.closed, 'the replay to end', 120_000)
      const seconds = (performance.now() - started) / 1000
      clearInterval(sampler)
      if (reader.count !== kept) throw new Error(`the replay brought ${reader.count} messages, not ${kept}`)
      figures.replaySeconds!.push(seconds)
      figures.replayPerSecond!.push(kept / seconds)
      figures.rssBefore!.push(rss)
      figures.rssPeak!.push(peak)
      log(`replay: round ${round + 1} of ${options.rounds}`)
    }
  } finally {
    await stopServer(serve)
  }

  return Object.fromEntries(Object.entries(figures).map(([name, values]) => [name, median(values)]))
}

// ---------------------------------------------------------------- 3. reconnect

async function reconnectPart(runJs: string, options: Options): Promise<Record<string, number>> {
  const subscribers = 1000
  const backlog = 1000
  const seconds: number[] = []
  const cpu: number[] = []
  const serve = await startServer(runJs, [])
  try {
    const [resumeFrom] = await publishMany(serve.port, 'rc', 1, 1)
    await publishMany(serve.port, 'rc', backlog)
    const request = get('/msgbus/rc?format=sse', {'Last-Event-ID': resumeFrom!})
    for (let round = 0; round < options.rounds; round++) {
      const cpuBefore = cpuSeconds(serve.pid)
      const started = performance.now()
      // Each event has one data line; the stream's opening has none.
      const readers = Array.from({length: subscribers}, () => Counter.open(serve.port, request, '\ndata: '))
      await until(() => readers.every((reader) => reader.count >= backlog), () => `every subscriber's backlog (${readers.filter((r) => r.count >= backlog).length} of ${subscribers} have it)`, {
        timeoutMs: 120_000,
        everyMs: 5,
      })
      seconds.push((performance.now() - started) / 1000)
      cpu.push(cpuSeconds(serve.pid) - cpuBefore)
      const extra = readers.filter((reader) => reader.count !== backlog).length
      if (extra > 0) throw new Error(`${extra} subscribers received more than their backlog`)
      for (const reader of readers) reader.close()
      await until(() => readers.every((reader) => reader.closed), 'the subscribers to close', 30_000)
      await until(() => establishedOn(serve.port) === 0, 'the server to let go of them', 30_000)
      log(`reconnect: round ${round + 1} of ${options.rounds}`)
    }
  } finally {
    await stopServer(serve)
  }

  const time = median(seconds)
  return {seconds: time, messagesPerSecond: (subscribers * backlog) / time, serverCpuSeconds: median(cpu)}
}

// ---------------------------------------------------------------- the table

function table(rows: Array<[string, string, string]>): string {
  const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => row[column]!.length)))
  return rows.map((row) => row.map((cell, column) => (column === 1 ? cell.padStart(widths[1]!) : cell.padEnd(widths[column]!))).join('  ').trimEnd()).join('\n')
}

const us = (value: number) => `${value.toFixed(2)} µs`
const mib = (value: number) => `${(value / MiB).toFixed(1)} MiB`
const rate = (value: number) => `${Math.round(value).toLocaleString('en-US')}/s`

async function main(): Promise<void> {
  let options: Options
  try {
    options = parseOptions()
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof TypeError)) throw error
    process.stderr.write(`${(error as Error).message}\n\n${HELP}`)
    process.exit(2)
  }

  const runJs = prepareCli(options.build)
  const results: Partial<Record<Part, Record<string, number>>> = {}
  const rows: Array<[string, string, string]> = [['', 'median', 'note']]
  if (options.parts.includes('cost')) {
    const cost = await costPart(runJs, options)
    results.cost = cost
    rows.push(
      [`cost, ${options.subscribers} subscribers, ${options.messages.toLocaleString('en-US')} msgs a round`, '', ''],
      ['  server CPU per publish, history on', us(cost.onPublishUs!), rate(cost.onPublishesPerSecond!)],
      ['  server CPU per publish, history off', us(cost.offPublishUs!), rate(cost.offPublishesPerSecond!)],
      ['  server CPU per delivery, on / off', `${us(cost.onDeliveryUs!)} / ${us(cost.offDeliveryUs!)}`, ''],
      [
        '  on / off, round by round',
        cost.ratioOfRounds!.toFixed(3),
        `${cost.ratioMin!.toFixed(3)}-${cost.ratioMax!.toFixed(3)}; of the medians ${cost.ratio!.toFixed(3)}; target ≤ 1.10 ${cost.ratioOfRounds! <= 1.1 ? 'met' : 'MISSED'}`,
      ],
    )
  }

  if (options.parts.includes('replay') || options.parts.includes('memory')) {
    const kept = await keptPart(runJs, options, options.parts)
    results.replay = kept
    if (options.parts.includes('replay')) {
      rows.push(
        ['replay of 100,000 × 64 B, since=all&poll=1 (multipart)', '', ''],
        ['  messages/s', rate(kept.replayPerSecond!), `${kept.replaySeconds!.toFixed(2)} s`],
        ['  server RSS before / peak during', `${mib(kept.rssBefore!)} / ${mib(kept.rssPeak!)}`, ''],
      )
    }

    if (options.parts.includes('memory')) {
      rows.push(
        ['memory per kept message beyond its 64 B body (100,000 kept, one measurement)', '', ''],
        ['  heap (after a full GC)', `${Math.round(kept.heapPerMessage!)} B`, `${mib(kept.heapBefore!)} → ${mib(kept.heapAfter!)}`],
        ['  + array buffers beyond the body', `${Math.round(kept.buffersPerMessage!)} B`, ''],
        ['  RSS', `${Math.round(kept.rssPerMessage!)} B`, ''],
      )
    }
  }

  if (options.parts.includes('reconnect')) {
    const reconnect = await reconnectPart(runJs, options)
    results.reconnect = reconnect
    rows.push(
      ['1,000 SSE subscribers reconnecting at once, 1,000 msgs each', '', ''],
      ['  until all have their backlog', `${reconnect.seconds!.toFixed(2)} s`, `server CPU ${reconnect.serverCpuSeconds!.toFixed(2)} s`],
      ['  messages/s', rate(reconnect.messagesPerSecond!), ''],
    )
  }

  process.stdout.write(`\nmsgbus history (${options.rounds} rounds, medians)\n\n${table(rows)}\n`)
  if (options.json) process.stdout.write(`${JSON.stringify(results)}\n`)
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    process.stderr.write(`bench:history: ${error.stack ?? error.message}\n`)
    process.exit(1)
  },
)
