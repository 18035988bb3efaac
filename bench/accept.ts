/**
 * `npm run bench:accept`: how long a new subscriber waits for its `200`
 * while the server carries a steady load (issue 13). A script that prints
 * figures, not a test: it exits non-zero only when a run could not be made.
 *
 *   npm run bench:accept                                 # 10,000 subscribers × 100 msg/s, 50 new subscriptions/s for 30 s
 *   npm run bench:accept -- --baseline 86b1ae3 --repeat 3   # that commit's server and this one's, in turn, 3 runs each
 *   npm run bench:accept -- --churn 300                  # + the soak's churn (tools/load-run.ts Churner)
 *   npm run bench:accept -- --help
 *
 * Every part is its own process, as in bench/fanout.ts and bench/soak.ts:
 * `msgbus serve --stats 1`, the steady subscribers (`msgbus test-sub`), the
 * publisher (`msgbus test-pub`). This process opens the probes: raw sockets
 * that send `GET /msgbus/<channel> HTTP/1.1`, time connect() → `connect` →
 * the `200` status line, then close with a FIN and time the server's FIN.
 * The server is started with a small preload (PROBE_HOOK below, measurement
 * only) that stamps when each probe's connection was accepted and when its
 * request was parsed and answered, so the wait can be split into phases:
 *
 *   syn      connect() called → the client's handshake done ('connect'): SYNs dropped and retried
 *   queue    → the server accepted it: the accept queue (and final ACKs dropped while it was full)
 *   read     accepted → its request parsed ('request')
 *   answer   parsed → the 200 read by this process
 *
 * Beside them: the machine's TCP counters (ListenOverflows, ListenDrops...:
 * the whole network namespace's, other processes' listeners included), the
 * listener's accept queue and SYN_RECV entries sampled with `ss` every 200 ms
 * (this listener's only), the server's event-loop delay (its stats lines),
 * and this process's own event-loop delay (the probes' clock).
 *
 * Loopback only, bounded in time and count; every child is stopped on any
 * exit path (tools/processes.ts). See bench/README.md, "Accept latency".
 */
import {execFile, execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync} from 'node:fs'
import {connect, type Socket} from 'node:net'
import {cpus, tmpdir} from 'node:os'
import {join} from 'node:path'
import {monitorEventLoopDelay, performance} from 'node:perf_hooks'
import {parseArgs} from 'node:util'
import {exitOnHelp, numberOption, UsageError} from './args.js'
import {cpuSeconds, machineTimes, parseStatsLine} from '../tools/proc.js'
import {prepareCli, ROOT, runCli, startTestSub, stop, stopAll, type Cli, type SubProcess} from '../tools/processes.js'
import {Churner, pubReport, startTestPub, subscribersLive} from '../tools/load-run.js'
import {sleep, until} from '../tools/wait.js'

function log(text: string): void {
  process.stderr.write(`accept: ${text}\n`)
}

/** Wall-clock milliseconds, sub-millisecond, comparable between processes on this machine. */
const wall = (): number => performance.timeOrigin + performance.now()

// ---------------------------------------------------------------- the server's side of a probe

/** Probes connect from 127.0.0.201-220 (test-sub uses 127.0.0.1-3, the soak's churn 127.0.0.101-120). */
const PROBE_SOURCES = Array.from({length: 20}, (_, i) => `127.0.0.${201 + i}`)

/**
 * Preloaded into the server (node --import): for connections from the probe
 * addresses only, one stderr line when the request has been handled:
 * `accept-probe ADDR:PORT accept=T request=T answered=T` (wall-clock ms as
 * above): when Node emitted 'connection' (the accept), 'request' (the head
 * parsed), and when the request handler returned (a subscription's 200 head
 * is written inside it). Measurement only: one property read per connection
 * and per request.
 */
const PROBE_HOOK = [
  '--import',
  'data:text/javascript,' +
    encodeURIComponent(
      "import http from 'node:http';const re=/^(::ffff:)?127\\.0\\.0\\.2\\d\\d$/;const now=()=>performance.timeOrigin+performance.now();" +
        'const emit=http.Server.prototype.emit;' +
        "http.Server.prototype.emit=function(event,a){if(event==='connection'){if(re.test(a.remoteAddress))a.__acceptedAt=now()}" +
        "else if(event==='request'&&a.socket&&a.socket.__acceptedAt!==undefined){const s=a.socket;const parsed=now();const r=emit.apply(this,arguments);" +
        "process.stderr.write('accept-probe '+s.remoteAddress+':'+s.remotePort+' accept='+s.__acceptedAt.toFixed(2)+' request='+parsed.toFixed(2)+' answered='+now().toFixed(2)+'\\n');return r}" +
        'return emit.apply(this,arguments)};' +
        // Every second: loop iterations, I/O events and accepts (every connection's, not only the probes') in it.
        "let accepts=0;const count=http.Server.prototype.emit;http.Server.prototype.emit=function(event){if(event==='connection')accepts++;return count.apply(this,arguments)};" +
        'let last=performance.nodeTiming.uvMetricsInfo;setInterval(()=>{const m=performance.nodeTiming.uvMetricsInfo;' +
        "process.stderr.write('loop-probe at='+now().toFixed(0)+' loops='+(m.loopCount-last.loopCount)+' events='+(m.events-last.events)+' accepts='+accepts+'\\n');last=m;accepts=0},1000).unref()",
    ),
]

/** The server's loop iterations, I/O events and accepted connections in the second before `at`. */
interface LoopLine {
  at: number
  loops: number
  events: number
  accepts: number
}

function parseLoopLine(line: string): LoopLine | undefined {
  const match = /loop-probe at=(\d+) loops=(\d+) events=(\d+) accepts=(\d+)/.exec(line)
  if (!match) return undefined
  return {at: Number(match[1]), loops: Number(match[2]), events: Number(match[3]), accepts: Number(match[4])}
}

interface ServerStamp {
  accept: number
  request: number
  answered: number
}

function parseStamp(line: string): [string, ServerStamp] | undefined {
  const match = /accept-probe (?:::ffff:)?([\d.]+:\d+) accept=([\d.]+) request=([\d.]+) answered=([\d.]+)/.exec(line)
  if (!match) return undefined
  return [match[1]!, {accept: Number(match[2]), request: Number(match[3]), answered: Number(match[4])}]
}

// ---------------------------------------------------------------- the probes

interface Probe {
  /** connect() called. */
  start: number
  /** The client's side of the handshake done ('connect'). */
  connected?: number
  /** The status line read. */
  status?: number
  statusLine?: string
  /** Our FIN sent, and the server's read. */
  finSent?: number
  finAnswered?: number
  /** `address:port` of our end: the server's remote end. */
  key?: string
  error?: string
  timedOut?: boolean
  done: boolean
}

/**
 * `rate` new subscriptions a second on an absolute schedule, each a raw
 * socket from one of PROBE_SOURCES sending `GET path HTTP/1.1`. On the
 * status line it sends its FIN; the server's FIN ends it. Each is given at
 * most `timeoutMs` for all of that, then destroyed.
 */
class Prober {
  readonly probes: Probe[] = []
  private timer: NodeJS.Timeout | undefined
  private started = 0
  private open = 0

  constructor(
    private readonly port: number,
    private readonly path: string,
    private readonly rate: number,
    private readonly timeoutMs: number,
  ) {}

  start(): void {
    this.started = performance.now()
    this.timer = setInterval(() => {
      const due = Math.floor(((performance.now() - this.started) / 1000) * this.rate)
      while (this.probes.length < due) this.one()
    }, 2)
  }

  stopOpening(): void {
    clearInterval(this.timer)
  }

  /** Resolves when every probe has finished (each is bounded by timeoutMs). */
  async settled(): Promise<void> {
    while (this.open > 0) await sleep(50)
  }

  private one(): void {
    const index = this.probes.length
    const probe: Probe = {start: wall(), done: false}
    this.probes.push(probe)
    this.open++
    const socket: Socket = connect({host: '127.0.0.1', port: this.port, localAddress: PROBE_SOURCES[index % PROBE_SOURCES.length]})
    socket.setNoDelay(true)
    const timer = setTimeout(() => {
      probe.timedOut = true
      socket.destroy()
    }, this.timeoutMs)
    socket.on('connect', () => {
      probe.connected = wall()
      probe.key = `${socket.localAddress}:${socket.localPort}`
      socket.write(`GET ${this.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    })
    socket.on('data', (chunk: Buffer) => {
      if (probe.status !== undefined) return
      probe.status = wall()
      probe.statusLine = chunk.subarray(0, chunk.indexOf('\r\n') >>> 0).toString('latin1').slice(0, 60)
      probe.finSent = wall()
      socket.end()
    })
    socket.on('end', () => {
      if (probe.finSent !== undefined) probe.finAnswered = wall()
      socket.destroy()
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      probe.error ??= `${probe.connected === undefined ? 'connect' : 'read'}: ${error.code ?? error.message}`
    })
    socket.on('close', () => {
      clearTimeout(timer)
      probe.done = true
      this.open--
    })
  }
}

// ---------------------------------------------------------------- the kernel's view

function contextSwitches(pid: number): {voluntary: number; involuntary: number} {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1')
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN)
  return {voluntary: field('voluntary_ctxt_switches'), involuntary: field('nonvoluntary_ctxt_switches')}
}

/** The TcpExt and Tcp counters of /proc/net/netstat and /proc/net/snmp (this network namespace: every process's sockets). */
function tcpCounters(): Record<string, number> {
  const counters: Record<string, number> = {}
  for (const file of ['/proc/net/netstat', '/proc/net/snmp']) {
    const lines = readFileSync(file, 'latin1').split('\n')
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i]!.split(' ')
      const values = lines[i + 1]!.split(' ')
      const prefix = names[0]!
      if (prefix !== 'TcpExt:' && prefix !== 'Tcp:') continue
      for (let j = 1; j < names.length; j++) counters[`${prefix.slice(0, -1)}.${names[j]}`] = Number(values[j])
    }
  }

  return counters
}

/** The counters that tell a full listen queue and the retransmissions it causes. */
const COUNTERS = [
  'TcpExt.ListenOverflows',
  'TcpExt.ListenDrops',
  'TcpExt.TCPReqQFullDrop',
  'TcpExt.TCPReqQFullDoCookies',
  'TcpExt.SyncookiesSent',
  'TcpExt.SyncookiesRecv',
  'TcpExt.TCPSynRetrans',
  'TcpExt.TCPTimeouts',
  'Tcp.RetransSegs',
] as const

interface QueueSample {
  at: number
  /** Connections in the listener's accept queue (ss Recv-Q). */
  accept: number
  /** Its limit: min(backlog given to listen(), somaxconn) (ss Send-Q). */
  backlog: number
  /** Handshakes begun but not in the accept queue (SYN_RECV entries on the port). */
  synRecv: number
}

/** Samples the listener on `port` every `everyMs` with `ss` (one small process each time: the kernel filters). */
class QueueSampler {
  readonly samples: QueueSample[] = []
  private timer: NodeJS.Timeout | undefined
  private busy = false

  constructor(private readonly port: number) {}

  start(everyMs = 200): void {
    this.timer = setInterval(() => this.sample(), everyMs)
  }

  stop(): void {
    clearInterval(this.timer)
  }

  private sample(): void {
    if (this.busy) return
    this.busy = true
    const at = wall()
    execFile('ss', ['-tnH', 'state', 'listening', 'state', 'syn-recv', `( sport = :${this.port} )`], {timeout: 2000}, (error, stdout) => {
      this.busy = false
      if (error) return
      const sample: QueueSample = {at, accept: Number.NaN, backlog: Number.NaN, synRecv: 0}
      for (const line of stdout.split('\n')) {
        const fields = line.trim().split(/\s+/)
        if (fields[0] === 'LISTEN') {
          sample.accept = Number(fields[1])
          sample.backlog = Number(fields[2])
        } else if (fields[0] === 'SYN-RECV') sample.synRecv++
      }

      this.samples.push(sample)
    })
  }
}

// ---------------------------------------------------------------- one run

interface Options {
  subscribers: number
  subProcesses: number
  rate: number
  channels: number
  probeRate: number
  duration: number
  churn: number
  probeTimeout: number
  settle: number
  repeat: number
  baseline?: string
  /** Further builds to run, as name=path of their bin/run.js. */
  clis: Array<{name: string; runJs: string}>
  serverArgs: string[]
  build: boolean
  timeline: boolean
  json: boolean
}

interface Stats {
  n: number
  p50: number
  p99: number
  max: number
}

interface RunResult {
  variant: string
  run: number
  error?: string
  probes: number
  ok: number
  /** Answered with another status (503...). */
  refused: number
  /** No status line within the probe timeout, or a connect/read error. */
  failed: number
  errors: string[]
  connectTo200: Stats
  phases: {syn: Stats; queue: Stats; read: Stats; answer: Stats}
  /** Probes with no server stamp (the server never handled their request, or the line was lost). */
  unstamped: number
  finToFin: Stats
  finUnanswered: number
  counters: Record<string, number>
  acceptQueue: {max: number; backlog: number; fullSamples: number; samples: number; synRecvMax: number}
  serverLoop: {p99Median: number; p99Max: number; max: number}
  /** Medians over the seconds of the probe window: the server's loop iterations a second, I/O events a second, connections accepted a second. */
  turns: {loopsPerSecond: number; eventsPerSecond: number; acceptsPerSecond: number}
  proberLoopMaxMs: number
  deliveriesPerSecond: number
  /** The server's CPU time over the window divided by what it delivered meanwhile (its stats lines' delivered=), µs. */
  cpuPerDeliveryUs: number
  published: number
  serverCpuSeconds: number
  /** The server's context switches over the probe window (/proc/<pid>/status): voluntary (it waited) and not (it was preempted). */
  serverSwitches: {voluntary: number; involuntary: number}
  /** CPU seconds the machine spent over the probe window, all processes, and the window's length. */
  machineBusySeconds: number
  windowSeconds: number
  /** Churn connections (--churn): connect → 200 as the soak reports it. */
  churn?: {opened: number; streamed: number; p50: number; p99: number; max: number; connectErrors: number; refused: number; finUnanswered: number}
  /** Per second of the probe window: probes opened, the worst connect → 200 of those, accept queue and SYN_RECV maxima, the server's loop max. */
  timeline: Array<{s: number; probes: number; worstMs: number; acceptMax: number; synRecvMax: number; loopMaxMs: number; loops: number; accepts: number}>
}

function stats(values: number[]): Stats {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! : Number.NaN)
  return {n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.length ? sorted.at(-1)! : Number.NaN}
}

const median = (values: number[]): number => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

async function oneRun(runJs: string, variant: string, run: number, o: Options): Promise<RunResult> {
  const result = {variant, run, probes: 0, ok: 0, refused: 0, failed: 0, errors: [], unstamped: 0, finUnanswered: 0, counters: {}, timeline: []} as unknown as RunResult
  const lifetimeS = 60 + o.subscribers / 300 + o.settle + o.duration + o.probeTimeout / 1000 + 60
  const stamps = new Map<string, ServerStamp>()
  const statLines: Array<{at: number; values: Record<string, number>}> = []
  const loopLines: LoopLine[] = []
  let port = 0
  const server: Cli = runCli(runJs, `msgbus serve (${variant})`, ['serve', '--port', '0', '--address', '127.0.0.1', '--stats', '1', ...o.serverArgs], lifetimeS * 1000, PROBE_HOOK)
  server.onLine = (line) => {
    const stamp = parseStamp(line)
    if (stamp) return void stamps.set(stamp[0], stamp[1])
    const turns = parseLoopLine(line)
    if (turns) return void loopLines.push(turns)
    const values = parseStatsLine(line)
    if (values) return void statLines.push({at: wall(), values})
    const listening = / listen HTTP on ([\d.]+):(\d+)/.exec(line)
    if (listening && port === 0) port = Number(listening[2])
  }

  const subs: SubProcess[] = []
  let pub: Cli | undefined
  let churner: Churner | undefined
  const sampler = {current: undefined as QueueSampler | undefined}
  try {
    await Promise.race([
      until(() => port > 0, () => `the server to say where it listens within 20 s:\n${server.lines.join('\n')}`, 20_000),
      server.exit.then((code) => {
        if (port === 0) throw new Error(`the server exited (${code}) before listening:\n${server.lines.join('\n')}`)
      }),
    ])
    const url = `http://127.0.0.1:${port}`
    for (let i = 0; i < o.subProcesses; i++) {
      const requested = Math.floor(o.subscribers / o.subProcesses) + (i < o.subscribers % o.subProcesses ? 1 : 0)
      subs.push(startTestSub(runJs, url, 'bench', requested, `test-sub ${i + 1}/${o.subProcesses}`, lifetimeS, {channels: o.channels}))
    }

    const connecting = performance.now()
    await subscribersLive(subs, (30 + o.subscribers / 300) * 1000)
    log(`   ${o.subscribers.toLocaleString('en-US')} subscriptions live in ${((performance.now() - connecting) / 1000).toFixed(1)} s`)

    // Publishing from here to the end of the probes; the probes begin once it has settled.
    const pubSeconds = o.settle + o.duration + 1
    pub = startTestPub(runJs, url, 'bench', o.rate, pubSeconds, 'test-pub', o.channels)
    const path = o.channels > 1 ? '/msgbus/bench-0' : '/msgbus/bench'
    if (o.churn > 0) {
      churner = new Churner(port, path, o.churn)
      churner.start()
    }

    await sleep(o.settle * 1000)
    const queue = new QueueSampler(port)
    sampler.current = queue
    const prober = new Prober(port, path, o.probeRate, o.probeTimeout)
    const loop = monitorEventLoopDelay({resolution: 10})
    const before = {counters: tcpCounters(), server: cpuSeconds(server.pid), switches: contextSwitches(server.pid), machine: machineTimes(), at: wall()}
    loop.enable()
    queue.start()
    prober.start()
    await sleep(o.duration * 1000)
    prober.stopOpening()
    const windowEnd = wall()
    const published = await pubReport(pub)
    await churner?.stop()
    // The stragglers: each is bounded by the probe timeout.
    await prober.settled()
    queue.stop()
    loop.disable()
    const after = {counters: tcpCounters(), server: cpuSeconds(server.pid), switches: contextSwitches(server.pid), machine: machineTimes(), at: wall()}
    // The last stamps and stats lines.
    await sleep(300)

    result.published = published.report.published
    result.windowSeconds = (after.at - before.at) / 1000
    result.serverCpuSeconds = after.server - before.server
    result.serverSwitches = {voluntary: after.switches.voluntary - before.switches.voluntary, involuntary: after.switches.involuntary - before.switches.involuntary}
    result.machineBusySeconds = after.machine.busy - before.machine.busy
    for (const name of COUNTERS) result.counters[name] = (after.counters[name] ?? Number.NaN) - (before.counters[name] ?? Number.NaN)
    result.proberLoopMaxMs = Math.max(0, loop.max / 1e6 - 10)

    const probes = prober.probes
    result.probes = probes.length
    const syn: number[] = []
    const queued: number[] = []
    const read: number[] = []
    const answer: number[] = []
    const total: number[] = []
    const fin: number[] = []
    for (const p of probes) {
      const ok = p.statusLine?.startsWith('HTTP/1.1 200 ')
      if (ok) {
        result.ok++
        total.push(p.status! - p.start)
        if (p.finAnswered !== undefined) fin.push(p.finAnswered - p.finSent!)
        else result.finUnanswered++
      } else if (p.statusLine !== undefined) {
        result.refused++
        if (result.errors.length < 5) result.errors.push(`answered ${JSON.stringify(p.statusLine)}`)
      } else {
        result.failed++
        const why = p.error ?? (p.timedOut ? `no status line within ${o.probeTimeout / 1000} s (${p.connected === undefined ? 'not connected' : 'connected'})` : 'closed unanswered')
        if (result.errors.length < 5 && !result.errors.includes(why)) result.errors.push(why)
      }

      if (p.connected !== undefined) syn.push(p.connected - p.start)
      const stamp = p.key ? stamps.get(p.key) : undefined
      if (!stamp) {
        if (ok) result.unstamped++
        continue
      }

      if (p.connected !== undefined) queued.push(Math.max(0, stamp.accept - p.connected))
      read.push(stamp.request - stamp.accept)
      if (ok) answer.push(p.status! - stamp.request)
    }

    result.connectTo200 = stats(total)
    result.phases = {syn: stats(syn), queue: stats(queued), read: stats(read), answer: stats(answer)}
    result.finToFin = stats(fin)

    const samples = queue.samples
    const backlog = samples.find((s) => Number.isFinite(s.backlog))?.backlog ?? Number.NaN
    result.acceptQueue = {
      max: Math.max(0, ...samples.map((s) => s.accept).filter(Number.isFinite)),
      backlog,
      // Linux takes one more than the backlog before it calls the queue full.
      fullSamples: samples.filter((s) => s.accept >= backlog).length,
      samples: samples.length,
      synRecvMax: Math.max(0, ...samples.map((s) => s.synRecv)),
    }
    const window = statLines.filter((s) => s.at >= before.at && s.at <= after.at + 1000)
    result.serverLoop = {
      p99Median: median(window.map((s) => s.values['loop-p99']!)),
      p99Max: Math.max(...window.map((s) => s.values['loop-p99']!)),
      max: Math.max(...window.map((s) => s.values['loop-max']!)),
    }
    const turnWindow = loopLines.filter((l) => l.at > before.at + 1000 && l.at <= windowEnd)
    result.turns = {
      loopsPerSecond: median(turnWindow.map((l) => l.loops)),
      eventsPerSecond: median(turnWindow.map((l) => l.events)),
      acceptsPerSecond: median(turnWindow.map((l) => l.accepts)),
    }
    const pubWindow = statLines.filter((s) => s.at >= before.at && s.at <= windowEnd)
    result.deliveriesPerSecond = median(pubWindow.map((s) => s.values['deliver/s']!))
    const [first, last] = [window[0], window.at(-1)]
    result.cpuPerDeliveryUs =
      first && last && last.at > first.at
        ? ((result.serverCpuSeconds / result.windowSeconds) * 1e6) / ((last.values.delivered! - first.values.delivered!) / ((last.at - first.at) / 1000))
        : Number.NaN
    if (churner) {
      const c = churner.counts
      result.churn = {opened: c.opened, streamed: c.streamed, ...c.answerMs, connectErrors: c.connectErrors, refused: c.refused, finUnanswered: c.finUnanswered}
    }

    const seconds = Math.ceil(o.duration)
    for (let s = 0; s < seconds; s++) {
      const from = before.at + s * 1000
      const to = from + 1000
      const opened = probes.filter((p) => p.start >= from && p.start < to)
      const inSecond = <T extends {at: number}>(items: T[]) => items.filter((x) => x.at >= from && x.at < to)
      result.timeline.push({
        s,
        probes: opened.length,
        worstMs: Math.max(0, ...opened.map((p) => (p.status ?? wall()) - p.start)),
        acceptMax: Math.max(0, ...inSecond(samples).map((x) => x.accept).filter(Number.isFinite)),
        synRecvMax: Math.max(0, ...inSecond(samples).map((x) => x.synRecv)),
        loopMaxMs: Math.max(0, ...statLines.filter((x) => x.at >= to && x.at < to + 1000).map((x) => x.values['loop-max']!)),
        loops: loopLines.find((x) => x.at >= to && x.at < to + 1000)?.loops ?? Number.NaN,
        accepts: loopLines.find((x) => x.at >= to && x.at < to + 1000)?.accepts ?? Number.NaN,
      })
    }
  } catch (error) {
    result.error = (error as Error).message.split('\n')[0]
    log(`   FAILED: ${(error as Error).message}`)
  } finally {
    sampler.current?.stop()
    await churner?.stop()
    if (pub) await stop(pub.child, 3000)
    await Promise.all(subs.map((p) => stop(p.cli.child, 3000)))
    await stop(server.child, 5000)
    await stopAll(1000)
  }

  return result
}

// ---------------------------------------------------------------- the baseline's build

let baselineDir: string | undefined
process.on('exit', () => {
  if (baselineDir) rmSync(baselineDir, {recursive: true, force: true})
})

/** Builds commit `ref` in a temporary folder (git archive, this checkout's node_modules linked): its bin/run.js. */
function buildBaseline(ref: string): string {
  const commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', `${ref}^{commit}`], {encoding: 'utf8'}).trim()
  baselineDir = mkdtempSync(join(tmpdir(), 'msgbus-accept-baseline-'))
  execFileSync('sh', ['-c', 'git -C "$ROOT" archive "$COMMIT" | tar -x -C "$DIR"'], {env: {...process.env, ROOT, COMMIT: commit, DIR: baselineDir}})
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(baselineDir, 'node_modules'))
  const started = performance.now()
  try {
    execFileSync('npm', ['run', '--silent', 'build'], {cwd: baselineDir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000})
  } catch (error) {
    const output = String((error as {stdout?: Buffer}).stdout ?? '') + String((error as {stderr?: Buffer}).stderr ?? '')
    throw new Error(`the baseline ${commit} did not build:\n${output.trim().split('\n').slice(-8).join('\n')}`)
  }

  log(`built the baseline ${commit} in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  return join(baselineDir, 'bin', 'run.js')
}

// ---------------------------------------------------------------- options

const HELP = `usage: npm run bench:accept -- [options]

Runs \`msgbus serve --stats 1\` with --subscribers steady subscribers (test-sub
processes) over --channels channels, test-pub publishing --rate msg/s to them
in turn, and meanwhile opens --probe-rate new subscriptions a second for
--duration seconds, each timed connect() → 200 status line, split into phases
(see bench/README.md "Accept latency"). Prints figures; never fails on one.

Options:
  --subscribers N     steady subscribers (default 10000)
  --sub-processes P   test-sub processes they are split over (default 2)
  --rate R            messages/s (default 100)
  --channels K        channels the subscribers are spread over, bench-0 ... bench-(K-1)
                      (default 20: each message reaches N/K subscribers, as in the soak;
                      1: every message reaches all N, fanned out in slices)
  --probe-rate C      new subscriptions a second, to bench-0 (default 50)
  --duration S        seconds of probing (default 30)
  --churn C           also the soak's churn: C connections a second that subscribe, hold
                      0-500 ms and leave by RST, FIN or mid-head (default 0)
  --probe-timeout S   most a probe may take, status line and FINs together (default 30)
  --settle S          seconds of publishing before the probes begin (default 2)
  --repeat N          runs of each variant (default 1)
  --baseline REF      also run the server built from git commit REF (built in a temporary
                      folder); the runs alternate: baseline, this, baseline, this...
  --cli NAME=RUNJS    also run another build of the CLI (its bin/run.js; repeatable), e.g. a
                      copy of the tree with an experimental change, built with npm run build
  --server-arg ARG    extra argument for \`msgbus serve\` (repeatable)
  --timeline          print each run's per-second timeline
  --no-build          use dist/ as it is instead of running \`npm run build\` first
  --json              also print the results as JSON
`

function parseOptions(argv: string[]): Options {
  const {values} = parseArgs({
    args: argv,
    options: {
      subscribers: {type: 'string'},
      'sub-processes': {type: 'string'},
      rate: {type: 'string'},
      channels: {type: 'string'},
      'probe-rate': {type: 'string'},
      duration: {type: 'string'},
      churn: {type: 'string'},
      'probe-timeout': {type: 'string'},
      settle: {type: 'string'},
      repeat: {type: 'string'},
      baseline: {type: 'string'},
      cli: {type: 'string', multiple: true},
      'server-arg': {type: 'string', multiple: true},
      timeline: {type: 'boolean'},
      'no-build': {type: 'boolean'},
      json: {type: 'boolean'},
      help: {type: 'boolean', short: 'h'},
    },
    strict: true,
  })
  exitOnHelp(values.help, HELP)
  const subscribers = numberOption(values.subscribers, 'subscribers', 10_000, 1)
  return {
    subscribers,
    subProcesses: Math.min(subscribers, numberOption(values['sub-processes'], 'sub-processes', 2, 1)),
    rate: numberOption(values.rate, 'rate', 100, 1),
    channels: numberOption(values.channels, 'channels', 20, 1),
    probeRate: numberOption(values['probe-rate'], 'probe-rate', 50, 1),
    duration: numberOption(values.duration, 'duration', 30, 1),
    churn: numberOption(values.churn, 'churn', 0, 0),
    probeTimeout: numberOption(values['probe-timeout'], 'probe-timeout', 30, 1) * 1000,
    settle: numberOption(values.settle, 'settle', 2, 0),
    repeat: numberOption(values.repeat, 'repeat', 1, 1),
    baseline: values.baseline,
    clis: (values.cli ?? []).map((text) => {
      const at = text.indexOf('=')
      if (at < 1) throw new UsageError(`--cli: expected NAME=PATH/bin/run.js, got ${JSON.stringify(text)}`)
      return {name: text.slice(0, at), runJs: text.slice(at + 1)}
    }),
    serverArgs: values['server-arg'] ?? [],
    build: !values['no-build'],
    timeline: values.timeline ?? false,
    json: values.json ?? false,
  }
}

// ---------------------------------------------------------------- printing

const ms = (value: number): string => (Number.isFinite(value) ? (value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1)) : '–')
const trio = (s: Stats): string => `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)}`
const count = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–')

function runLines(r: RunResult, cores: number): string[] {
  if (r.error) return [`${r.variant} #${r.run}: FAILED: ${r.error}`]
  const c = r.counters
  const others = r.machineBusySeconds - r.serverCpuSeconds
  const lines = [
    `${r.variant} #${r.run}: ${r.ok}/${r.probes} probes got 200 (refused ${r.refused}, failed ${r.failed}${r.errors.length ? `: ${r.errors.join('; ')}` : ''}); ` +
      `connect → 200 ms p50/p99/max ${trio(r.connectTo200)}`,
    `   phases ms p50/p99/max: syn ${trio(r.phases.syn)} | queue ${trio(r.phases.queue)} | read ${trio(r.phases.read)} | answer ${trio(r.phases.answer)}` +
      (r.unstamped ? ` (${r.unstamped} answered probes without a server stamp)` : ''),
    `   our FIN → the server's ms p50/p99/max ${trio(r.finToFin)}, unanswered ${r.finUnanswered}`,
    `   listener: accept queue max ${count(r.acceptQueue.max)} of ${count(r.acceptQueue.backlog)} (full in ${r.acceptQueue.fullSamples} of ${r.acceptQueue.samples} samples), SYN_RECV max ${r.acceptQueue.synRecvMax}; ` +
      `TCP counters (namespace-wide) ListenOverflows +${count(c['TcpExt.ListenOverflows']!)} ListenDrops +${count(c['TcpExt.ListenDrops']!)} ` +
      `ReqQFullDrop +${count(c['TcpExt.TCPReqQFullDrop']!)} SynRetrans +${count(c['TcpExt.TCPSynRetrans']!)} Timeouts +${count(c['TcpExt.TCPTimeouts']!)} RetransSegs +${count(c['Tcp.RetransSegs']!)}`,
    `   server: event loop delay p99 median ${ms(r.serverLoop.p99Median)} ms, p99 max ${ms(r.serverLoop.p99Max)}, max ${ms(r.serverLoop.max)}; ` +
      `${count(r.deliveriesPerSecond)} deliveries/s (${count(r.published)} published); CPU ${(r.serverCpuSeconds / r.windowSeconds).toFixed(2)} cores ` +
      `(${ms(r.cpuPerDeliveryUs)} µs a delivery, all its work counted), context switches/s ` +
      `${count(r.serverSwitches.voluntary / r.windowSeconds)} voluntary, ${count(r.serverSwitches.involuntary / r.windowSeconds)} preempted; ` +
      `loop iterations/s ${count(r.turns.loopsPerSecond)}, I/O events/s ${count(r.turns.eventsPerSecond)}, accepts/s ${count(r.turns.acceptsPerSecond)}; ` +
      `machine ${(r.machineBusySeconds / r.windowSeconds).toFixed(2)} of ${cores} cores busy (${(others / r.windowSeconds).toFixed(2)} not the server); this process's loop max ${ms(r.proberLoopMaxMs)} ms`,
  ]
  if (r.churn) {
    lines.push(
      `   churn: ${count(r.churn.opened)} opened, ${count(r.churn.streamed)} got 200; connect → 200 ms p50 ${r.churn.p50} p99 ${r.churn.p99} max ${r.churn.max} (from 'connect', as the soak times it); ` +
        `connect errors ${r.churn.connectErrors}, refused ${r.churn.refused}, FINs unanswered ${r.churn.finUnanswered}`,
    )
  }

  return lines
}

function timelineLines(r: RunResult): string[] {
  if (r.error || r.timeline.length === 0) return []
  return [
    `   timeline of ${r.variant} #${r.run} (s: probes opened, worst connect → 200 ms of those, accept queue max, SYN_RECV max, server: loop delay max ms, loop iterations, connections accepted):`,
    ...r.timeline.map(
      (t) =>
        `     ${String(t.s).padStart(3)}: ${String(t.probes).padStart(3)} ${ms(t.worstMs).padStart(7)} ${String(t.acceptMax).padStart(5)} ${String(t.synRecvMax).padStart(5)} ${ms(t.loopMaxMs).padStart(7)} ${count(t.loops).padStart(6)} ${count(t.accepts).padStart(5)}`,
    ),
  ]
}

function summaryTable(results: RunResult[], variants: string[]): string {
  const header = ['variant', 'runs', 'connect→200 p50', 'p99', 'max', 'queue p99', 'failed', 'FIN unanswered', 'ListenOverflows', 'ListenDrops', 'accept queue max', 'loop p99', 'loop max', 'loops/s', 'accepts/s', 'deliveries/s', 'µs/delivery']
  const rows = variants.map((variant) => {
    const runs = results.filter((r) => r.variant === variant && !r.error)
    const med = (of: (r: RunResult) => number) => median(runs.map(of))
    return [
      variant,
      String(runs.length),
      ms(med((r) => r.connectTo200.p50)),
      ms(med((r) => r.connectTo200.p99)),
      ms(med((r) => r.connectTo200.max)),
      ms(med((r) => r.phases.queue.p99)),
      count(med((r) => r.failed)),
      count(med((r) => r.finUnanswered)),
      count(med((r) => r.counters['TcpExt.ListenOverflows']!)),
      count(med((r) => r.counters['TcpExt.ListenDrops']!)),
      `${count(med((r) => r.acceptQueue.max))}/${count(med((r) => r.acceptQueue.backlog))}`,
      ms(med((r) => r.serverLoop.p99Median)),
      ms(med((r) => r.serverLoop.max)),
      count(med((r) => r.turns.loopsPerSecond)),
      count(med((r) => r.turns.acceptsPerSecond)),
      count(med((r) => r.deliveriesPerSecond)),
      ms(med((r) => r.cpuPerDeliveryUs)),
    ]
  })
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')
  return [line(header), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n')
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  let options: Options
  try {
    options = parseOptions(process.argv.slice(2))
  } catch (error) {
    if (!(error instanceof UsageError) && !(error as {code?: string}).code?.startsWith('ERR_PARSE_ARGS')) throw error
    process.stderr.write(`accept: ${(error as Error).message}\n\n${HELP}`)
    process.exit(2)
  }

  const started = performance.now()
  const o = options
  // Bounded whatever happens: every run's own bound, and then some.
  const perRun = 60 + o.subscribers / 300 + o.settle + o.duration + o.probeTimeout / 1000 + 30
  const watchdog = setTimeout(() => {
    log('overran its bound; stopping')
    void stopAll(1000).finally(() => process.exit(2))
  }, (perRun * o.repeat * (1 + o.clis.length + (o.baseline ? 1 : 0)) + 600) * 1000)
  watchdog.unref()

  const variants: Array<{name: string; runJs: string}> = []
  if (o.baseline) variants.push({name: `baseline ${o.baseline}`, runJs: buildBaseline(o.baseline)})
  variants.push({name: 'this tree', runJs: prepareCli(o.build)}, ...o.clis)
  const cores = cpus().length
  log(
    `${o.subscribers.toLocaleString('en-US')} subscribers (${o.subProcesses} test-sub processes) over ${o.channels} channel(s), ${o.rate} msg/s ` +
      `(${Math.round(o.subscribers / o.channels).toLocaleString('en-US')} deliveries a message), probes ${o.probeRate}/s for ${o.duration} s` +
      (o.churn ? `, churn ${o.churn}/s` : '') +
      `; ${variants.map((v) => v.name).join(' and ')}, ${o.repeat} run(s) each`,
  )
  const results: RunResult[] = []
  for (let run = 1; run <= o.repeat; run++) {
    for (const variant of variants) {
      log(`run ${run}/${o.repeat}: ${variant.name}`)
      const result = await oneRun(variant.runJs, variant.name, run, o)
      for (const line of runLines(result, cores)) log(line)
      results.push(result)
    }
  }

  let out =
    `\nmsgbus accept latency: ${cores} cores, node ${process.version}, loopback; ${o.subscribers.toLocaleString('en-US')} subscribers over ${o.channels} channel(s), ` +
    `${o.rate} msg/s; ${o.probeRate} new subscriptions/s for ${o.duration} s${o.churn ? `; churn ${o.churn}/s` : ''}` +
    `${o.serverArgs.length ? `; serve ${o.serverArgs.join(' ')}` : ''}; ${((performance.now() - started) / 1000).toFixed(0)} s\n` +
    `connect→200 = connect() called → the 200 status line read, ms; queue = the client's handshake done → the server's accept; ` +
    `TCP counters are the network namespace's (other processes' listeners count too); figures are medians over the runs\n\n`
  out += summaryTable(results, variants.map((v) => v.name)) + '\n\n'
  for (const r of results) out += [...runLines(r, cores), ...(o.timeline ? timelineLines(r) : [])].join('\n') + '\n'
  process.stdout.write(out)
  if (o.json) process.stdout.write(JSON.stringify(results) + '\n')
  clearTimeout(watchdog)
  process.exitCode = results.some((r) => r.error) ? 1 : 0
}

main().catch(async (error: unknown) => {
  process.stderr.write(`accept: ${(error as Error)?.message ?? error}\n`)
  await stopAll(1000)
  process.exitCode = 1
})
