/**
 * The load process of the fan-out benchmark (started by bench/fanout.ts with
 * an IPC channel; not meant to be run by hand). It opens N raw-socket
 * subscribers and one keep-alive publisher, all on loopback, publishes at a
 * fixed rate (or as fast as one-in-flight allows), and measures:
 * deliveries, loss, latency (publisher send → subscriber read, one clock),
 * the server's CPU time over the measured window and its RSS at the end.
 *
 * Timeline: connect every subscriber and wait until each stream is live →
 * publish for `warmup` s → [window: `duration` s] → stop publishing → wait for
 * the last deliveries → report to the parent → wait for it to stop the server
 * (counting streams that end properly) → exit.
 */
import {connect, type Socket} from 'node:net'
import {performance} from 'node:perf_hooks'
import {Histogram} from './histogram.js'
import {cpuSeconds, cpuTimes, machineTimes, statusBytes, type MachineTimes} from './proc.js'
import {MAGIC, PREFIX, SEQ_OFFSET, SubscriptionParser, TIME_OFFSET, type StreamSink} from './stream-parser.js'

export interface LoadConfig {
  scenario: string
  host: string
  port: number
  serverPid: number
  channel: string
  subs: number
  /** Messages per second; 0 means as fast as possible with one publish in flight. */
  rate: number
  warmup: number
  duration: number
  body: number
  /** Subscribers per loopback source address (127.0.0.1, 127.0.0.2, ...). */
  perAddress: number
  connectConcurrency: number
}

export interface LoadResult {
  scenario: string
  subs: number
  rate: number
  body: number
  windowSeconds: number
  messages: number
  delivered: number
  expected: number
  duplicates: number
  /** Subscribers that missed at least one message (gaps or a missing tail). */
  lossySubscribers: number
  missing: number
  backwards: number
  /** Subscriber streams that closed or failed before the end. */
  lostStreams: number
  foreignParts: number
  latencyMs: {p50: number; p90: number; p99: number; p999: number; max: number; mean: number; samples: number}
  publishRttMs: {p50: number; p99: number; max: number}
  /** Fixed rate only: how late sends left against their schedule. */
  sendLagMs: {p99: number; max: number}
  maxInFlight: number
  publishErrors: number
  subscriberCountMismatches: number
  serverCpuSeconds: number
  /** Of serverCpuSeconds, in user mode (the rest is the kernel: syscalls, and softirqs that interrupted it). */
  serverUserSeconds: number
  loadCpuSeconds: number
  /** The whole machine over the window: CPU seconds busy (all cores), of which irq+softirq. */
  machineBusySeconds: number
  machineIrqSeconds: number
  serverRssBytes: number
  serverHwmBytes: number
  connectSeconds: number
  drainSeconds: number
  incomplete: number
}

export type ParentMessage = {type: 'exit'}
export type ChildMessage =
  | {type: 'progress'; text: string}
  | {type: 'result'; result: LoadResult}
  | {type: 'closed'; properly: number; open: number}
  | {type: 'error'; message: string}

const send = (message: ChildMessage): void => {
  process.send?.(message)
}

class FatalError extends Error {}

/** Reports the failure to the parent and ends the process (after the message has left). */
function fatal(message: string): never {
  send({type: 'error', message})
  setTimeout(() => process.exit(2), 100)
  throw new FatalError(message)
}

process.on('uncaughtException', (error) => {
  if (!(error instanceof FatalError)) send({type: 'error', message: `load process: ${error.stack ?? error}`})
  setTimeout(() => process.exit(2), 100)
})

const config = JSON.parse(process.argv[2] ?? '{}') as LoadConfig
const maxRate = config.rate <= 0
// A hard stop, whatever happens: everything below is bounded in time.
const lifetime = 30 + config.subs / 200 + config.warmup + config.duration + 30
setTimeout(() => fatal(`load process: still running after ${lifetime.toFixed(0)} s, giving up`), lifetime * 1000).unref()
process.on('disconnect', () => process.exit(3))

// ---------------------------------------------------------------- subscribers

let readNow = 0 // performance.now() of the read being parsed: one clock read per read, not per part
let seqStart = Number.POSITIVE_INFINITY // first sequence number of the measured window
let counts = new Uint32Array(1 << 16) // deliveries per sequence number
let liveCount = 0
let closedProperly = 0
let lostStreams = 0
let shuttingDown = false
let onAllLive: (() => void) | undefined
const latency = new Histogram()
/** Subscribers whose stream is not live yet: opening waits for this, so the server's accept queue never overflows. */
const waitingForLive = new Map<SubscriptionParser, {resolve: () => void; reject: (error: Error) => void}>()

const sink: StreamSink = {
  onLive(stream) {
    waitingForLive.get(stream)?.resolve()
    waitingForLive.delete(stream)
    if (++liveCount === config.subs) onAllLive?.()
  },
  onPart(_stream, seq, sentAt) {
    if (seq >= counts.length) {
      const grown = new Uint32Array(Math.max(counts.length * 2, seq + 1))
      grown.set(counts)
      counts = grown
    }

    counts[seq]++
    if (seq >= seqStart) latency.record((readNow - sentAt) * 1000)
  },
  onClosed() {
    closedProperly++
  },
  onError(stream, reason) {
    const waiting = waitingForLive.get(stream)
    if (waiting) {
      waitingForLive.delete(stream)
      waiting.reject(new Error(`a subscription failed: ${reason}`))
    } else if (!shuttingDown) {
      send({type: 'progress', text: `subscriber stream error: ${reason}`})
    }
  },
}

// One read buffer for every subscriber socket: each read is parsed before the next one happens.
const readBuffer = Buffer.allocUnsafe(64 * 1024)
const parsers: SubscriptionParser[] = []
const sockets: Socket[] = []

function openSubscriber(index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const parser = new SubscriptionParser(sink)
    parsers.push(parser)
    const localAddress = `127.0.0.${1 + Math.floor(index / config.perAddress)}`
    const socket = connect({
      host: config.host,
      port: config.port,
      localAddress,
      onread: {
        buffer: readBuffer,
        callback(bytes: number, buffer: Uint8Array) {
          readNow = performance.now()
          parser.push(buffer as Buffer, 0, bytes)
          return true
        },
      },
    })
    sockets.push(socket)
    waitingForLive.set(parser, {resolve, reject})
    socket.once('connect', () => {
      socket.write(`GET /msgbus/${config.channel} HTTP/1.1\r\nHost: ${config.host}:${config.port}\r\n\r\n`)
    })
    socket.on('error', (error) => {
      if (!parser.live) reject(new Error(`subscriber ${index} from ${localAddress}: ${error.message}`))
    })
    socket.once('close', () => {
      if (!parser.live) {
        waitingForLive.delete(parser)
        reject(new Error(`subscriber ${index} from ${localAddress}: closed before its stream began`))
      } else if (!shuttingDown) {
        lostStreams++
      }
    })
  })
}

async function openSubscribers(): Promise<number> {
  const started = performance.now()
  const allLive = new Promise<void>((resolve) => {
    onAllLive = resolve
  })
  const timeout = setTimeout(
    () => fatal(`only ${liveCount} of ${config.subs} subscriptions live after ${((performance.now() - started) / 1000).toFixed(1)} s`),
    20_000 + config.subs * 2,
  )
  // A bounded number of subscriptions in the making: each worker opens the next once its last is live.
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < config.subs) await openSubscriber(next++)
  }

  await Promise.all(Array.from({length: Math.min(config.connectConcurrency, config.subs)}, worker))
  await allLive
  clearTimeout(timeout)
  return (performance.now() - started) / 1000
}

// ---------------------------------------------------------------- publisher

class Publisher {
  sent = 0
  answered = 0
  errors = 0
  mismatches = 0
  maxInFlight = 0
  stopped = false
  readonly rtt = new Histogram()
  readonly lag = new Histogram()
  onAnswer: (() => void) | undefined
  private readonly socket: Socket
  private readonly head: Buffer
  private readonly template: Buffer
  private readonly sentTimes: number[] = []
  private sentHead = 0
  private pending: Buffer | undefined
  private countFrom = Number.POSITIVE_INFINITY

  constructor(socket: Socket) {
    this.socket = socket
    socket.setNoDelay(true)
    this.head = Buffer.from(
      `POST /msgbus/${config.channel} HTTP/1.1\r\nHost: ${config.host}:${config.port}\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${config.body}\r\n\r\n`,
      'latin1',
    )
    const body = Buffer.alloc(config.body, 'x')
    MAGIC.copy(body, 0)
    this.template = Buffer.concat([this.head, body])
    socket.on('data', (data: Buffer) => this.onData(data))
    socket.on('close', () => {
      if (!this.stopped) fatal('the publisher connection closed')
    })
    socket.on('error', (error) => fatal(`publisher: ${error.message}`))
  }

  static open(): Promise<Publisher> {
    return new Promise((resolve, reject) => {
      const socket = connect({host: config.host, port: config.port, localAddress: '127.0.0.1'})
      socket.once('connect', () => resolve(new Publisher(socket)))
      socket.once('error', reject)
    })
  }

  /** Checks Msgbus-Subscribers on every answer to a publish sent from now on. */
  countSubscribersFrom(seq: number): void {
    this.countFrom = seq
  }

  /** Sends message `sent` (its sequence number); `due` is its scheduled time, for the lag. */
  publish(due?: number): void {
    const request = Buffer.allocUnsafe(this.template.length)
    this.template.copy(request)
    const now = performance.now()
    const at = this.head.length
    request.writeUInt32LE(this.sent, at + SEQ_OFFSET)
    request.writeDoubleLE(now, at + TIME_OFFSET)
    this.socket.write(request)
    this.sentTimes.push(now)
    this.sent++
    if (due !== undefined) this.lag.record((now - due) * 1000)
    const inFlight = this.sent - this.answered
    if (inFlight > this.maxInFlight) this.maxInFlight = inFlight
  }

  private onData(data: Buffer): void {
    const buf = this.pending ? Buffer.concat([this.pending, data]) : data
    this.pending = undefined
    let s = 0
    for (;;) {
      const end = buf.indexOf('\r\n\r\n', s, 'latin1')
      if (end < 0) break
      const head = buf.toString('latin1', s, end)
      const status = Number(head.slice(9, 12))
      let next = end + 4
      if (status !== 204) {
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
        next += length ? Number(length[1]) : 0
        if (next > buf.length) break
        this.errors++
        send({type: 'progress', text: `publish answered ${head.split('\r\n', 1)[0]}`})
      } else {
        const subscribers = /\r\nmsgbus-subscribers:\s*(\d+)/i.exec(head)
        if (this.answered >= this.countFrom && (!subscribers || Number(subscribers[1]) !== config.subs)) this.mismatches++
      }

      const sentAt = this.sentTimes[this.sentHead++]!
      if (this.sentHead > 4096) {
        this.sentTimes.splice(0, this.sentHead)
        this.sentHead = 0
      }

      this.rtt.record((performance.now() - sentAt) * 1000)
      this.answered++
      s = next
      this.onAnswer?.()
    }

    if (s < buf.length) this.pending = Buffer.from(buf.subarray(s))
  }

  close(): void {
    this.stopped = true
    this.socket.end()
  }
}

// ---------------------------------------------------------------- the run

function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function ms(h: Histogram, q: number): number {
  return h.quantile(q) / 1000
}

async function main(): Promise<void> {
  if (config.body < PREFIX) fatal(`bodies must be at least ${PREFIX} bytes`)
  const connectSeconds = await openSubscribers()
  send({type: 'progress', text: `${config.subs} subscriptions live in ${connectSeconds.toFixed(2)} s`})

  const publisher = await Publisher.open()
  const interval = maxRate ? 0 : 1000 / config.rate
  const t0 = performance.now() + 20
  const windowStart = t0 + config.warmup * 1000
  const windowEnd = windowStart + config.duration * 1000
  let serverCpu0 = {user: 0, system: 0}
  let loadCpu0 = 0
  let machine0: MachineTimes = {busy: 0, irq: 0, idle: 0}
  let machine: MachineTimes = {busy: 0, irq: 0, idle: 0}
  let measuredFrom = 0
  let seqEnd = -1
  let serverCpu = {user: 0, system: 0}
  let loadCpu = 0
  let windowSeconds = 0

  const windowOpened = new Promise<void>((resolve) =>
    setTimeout(() => {
      seqStart = publisher.sent
      publisher.countSubscribersFrom(seqStart)
      serverCpu0 = cpuTimes(config.serverPid)
      loadCpu0 = cpuSeconds(process.pid)
      machine0 = machineTimes()
      measuredFrom = performance.now()
      resolve()
    }, windowStart - performance.now()),
  )
  const windowClosed = new Promise<void>((resolve) =>
    setTimeout(() => {
      publisher.stopped = true
      seqEnd = publisher.sent
      const serverCpu1 = cpuTimes(config.serverPid)
      serverCpu = {user: serverCpu1.user - serverCpu0.user, system: serverCpu1.system - serverCpu0.system}
      loadCpu = cpuSeconds(process.pid) - loadCpu0
      const machine1 = machineTimes()
      machine = {busy: machine1.busy - machine0.busy, irq: machine1.irq - machine0.irq, idle: machine1.idle - machine0.idle}
      windowSeconds = (performance.now() - measuredFrom) / 1000
      resolve()
    }, windowEnd - performance.now()),
  )

  if (maxRate) {
    // One publish in flight: the next leaves as soon as the 204 for the last arrives.
    publisher.onAnswer = () => {
      if (!publisher.stopped) publisher.publish()
    }

    setTimeout(() => publisher.publish(), t0 - performance.now())
  } else {
    // A schedule of absolute times, so timer lateness never accumulates into drift.
    const tick = (): void => {
      if (publisher.stopped) return
      const now = performance.now()
      while (t0 + publisher.sent * interval <= now) publisher.publish(t0 + publisher.sent * interval)
      setTimeout(tick, Math.max(0, t0 + publisher.sent * interval - performance.now()))
    }

    setTimeout(tick, t0 - performance.now())
  }

  await windowOpened
  send({type: 'progress', text: `warm-up done (${seqStart} messages); measuring ${config.duration} s`})
  await windowClosed

  // Wait for the last deliveries: until every measured message reached every subscriber, or no progress for 2 s.
  const drainFrom = performance.now()
  const expected = (seqEnd - seqStart) * config.subs
  const deliveredSoFar = (): number => {
    let total = 0
    for (let seq = seqStart; seq < seqEnd; seq++) total += Math.min(counts[seq] ?? 0, config.subs)
    return total
  }

  let delivered = deliveredSoFar()
  let progressAt = performance.now()
  while (delivered < expected || publisher.answered < publisher.sent) {
    if (performance.now() - progressAt > 2000 || performance.now() - drainFrom > 10_000) break
    await wait(20)
    const now = deliveredSoFar()
    if (now !== delivered) progressAt = performance.now()
    delivered = now
  }

  const drainSeconds = (performance.now() - drainFrom) / 1000
  const serverRssBytes = statusBytes(config.serverPid, 'VmRSS')
  const serverHwmBytes = statusBytes(config.serverPid, 'VmHWM')

  let duplicates = 0
  for (let seq = seqStart; seq < seqEnd; seq++) duplicates += Math.max(0, (counts[seq] ?? 0) - config.subs)
  let lossySubscribers = 0
  let missing = 0
  let backwards = 0
  let foreignParts = 0
  let incomplete = 0
  const lastSent = publisher.sent - 1
  for (const parser of parsers) {
    const lost = parser.gaps + (lastSent - parser.lastSeq)
    if (lost > 0) lossySubscribers++
    missing += lost
    backwards += parser.backwards
    foreignParts += parser.foreign
    if (parser.failed) incomplete++
  }

  const result: LoadResult = {
    scenario: config.scenario,
    subs: config.subs,
    rate: config.rate,
    body: config.body,
    windowSeconds,
    messages: seqEnd - seqStart,
    delivered,
    expected,
    duplicates,
    lossySubscribers,
    missing,
    backwards,
    lostStreams,
    foreignParts,
    latencyMs: {
      p50: ms(latency, 0.5),
      p90: ms(latency, 0.9),
      p99: ms(latency, 0.99),
      p999: ms(latency, 0.999),
      max: latency.max / 1000,
      mean: latency.mean / 1000,
      samples: latency.total,
    },
    publishRttMs: {p50: ms(publisher.rtt, 0.5), p99: ms(publisher.rtt, 0.99), max: publisher.rtt.max / 1000},
    sendLagMs: maxRate ? {p99: Number.NaN, max: Number.NaN} : {p99: ms(publisher.lag, 0.99), max: publisher.lag.max / 1000},
    maxInFlight: publisher.maxInFlight,
    publishErrors: publisher.errors,
    subscriberCountMismatches: publisher.mismatches,
    serverCpuSeconds: serverCpu.user + serverCpu.system,
    serverUserSeconds: serverCpu.user,
    loadCpuSeconds: loadCpu,
    machineBusySeconds: machine.busy,
    machineIrqSeconds: machine.irq,
    serverRssBytes,
    serverHwmBytes,
    connectSeconds,
    drainSeconds,
    incomplete,
  }
  publisher.close()
  shuttingDown = true
  send({type: 'result', result})

  // The parent now stops the server; count the streams it ends properly.
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'exit') {
      send({type: 'closed', properly: closedProperly, open: sockets.filter((socket) => !socket.destroyed).length})
      for (const socket of sockets) socket.destroy()
      setTimeout(() => process.exit(0), 50)
    }
  })
}

main().catch((error: unknown) => {
  if (!(error instanceof FatalError)) send({type: 'error', message: `load process: ${(error as Error)?.message ?? error}`})
  setTimeout(() => process.exit(2), 100)
})
