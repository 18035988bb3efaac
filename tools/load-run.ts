/**
 * A run of `msgbus serve` under load, in pieces that the soak (bench/soak.ts)
 * and the fault tests (test/faults.test.ts) put together: the server in its
 * own process with its --stats lines and live heap watched; test-sub and
 * test-pub in their own processes and their reports; and the churner,
 * subscribers that come and go on raw sockets. Every child is guarded and
 * stopped as in tools/processes.ts.
 */
import {connect, type Socket} from 'node:net'
import {performance} from 'node:perf_hooks'
import type {TestPubReport, TestSubReport} from '../src/lib/load/report.js'
import {GC_PROBE_NODE_ARGS, parseGcProbe, parseStatsLine, statusBytes, unreceived, type GcProbe} from './proc.js'
import {jsonOf, runCli, stop, type Cli, type SubProcess} from './processes.js'
import {Changes, until} from './wait.js'

// ---------------------------------------------------------------- the server, watched

export interface StatsSample {
  /** performance.now() when the line arrived. */
  at: number
  values: Record<string, number>
}

/**
 * `msgbus serve --port 0 --address 127.0.0.1 ...` in its own process (runCli:
 * guarded, killed on exit), with its --stats lines parsed as they come
 * and, when started with GC_PROBE_NODE_ARGS, its live heap on demand.
 */
export class Serve {
  port = 0
  url = ''
  readonly stats: StatsSample[] = []
  /** Lines that say a subscriber was slow, or that something went wrong. */
  slowLines = 0
  readonly warnings: string[] = []
  onStats?: (sample: StatsSample) => void
  exitCode: number | NodeJS.Signals | undefined
  private probeWaiters: Array<(probe: GcProbe) => void> = []
  private readonly statsChanges = new Changes()

  private constructor(readonly cli: Cli) {
    void cli.exit.then((code) => {
      this.exitCode = code
      this.statsChanges.notify()
    })
    cli.onLine = (line, at) => {
      const values = parseStatsLine(line)
      if (values) {
        const sample = {at, values}
        this.stats.push(sample)
        this.onStats?.(sample)
        this.statsChanges.notify()
        return
      }

      const probe = parseGcProbe(line)
      if (probe) {
        this.probeWaiters.shift()?.(probe)
        return
      }

      if (/ slow /.test(line)) this.slowLines++
      const listening = / listen HTTP on ([\d.]+):(\d+)/.exec(line)
      if (listening && this.port === 0) {
        this.port = Number(listening[2])
        this.url = `http://127.0.0.1:${this.port}`
      } else if (/error|uncaught|unhandled|exception|warn|EMFILE|ENFILE/i.test(line) && this.warnings.length < 50) {
        this.warnings.push(line)
      }
    }
  }

  static async start(runJs: string, args: string[], lifetimeMs: number, nodeArgs: string[] = GC_PROBE_NODE_ARGS): Promise<Serve> {
    const serve = new Serve(runCli(runJs, 'msgbus serve', ['serve', '--port', '0', '--address', '127.0.0.1', ...args], lifetimeMs, nodeArgs))
    await Promise.race([
      until(() => serve.port > 0, () => `the server to say where it listens:\n${serve.cli.lines.join('\n')}`, 20_000),
      serve.cli.exit.then((code) => {
        if (serve.port === 0) throw new Error(`the server exited (${code}) before listening:\n${serve.cli.lines.join('\n')}`)
      }),
    ])
    return serve
  }

  get alive(): boolean {
    return this.exitCode === undefined
  }

  get pid(): number {
    return this.cli.pid
  }

  /** The server's RSS now, from /proc (bytes; NaN once it has gone). */
  rss(): number {
    try {
      return statusBytes(this.pid, 'VmRSS')
    } catch {
      return Number.NaN
    }
  }

  /** A full garbage collection in the server, then its memory: heapUsed is then what it really holds. */
  probe(timeoutMs = 5000): Promise<GcProbe> {
    if (!this.alive) return Promise.reject(new Error(`the server has exited (${this.exitCode})`))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.probeWaiters = this.probeWaiters.filter((waiter) => waiter !== done)
        reject(new Error(`the server did not answer the heap probe within ${timeoutMs} ms (started without GC_PROBE_NODE_ARGS?)`))
      }, timeoutMs)
      const done = (probe: GcProbe) => {
        clearTimeout(timer)
        resolve(probe)
      }

      this.probeWaiters.push(done)
      this.cli.child.kill('SIGUSR2')
    })
  }

  /** Waits for a stats line (one that arrives after the call) whose values pass `test`; rejects after `timeoutMs` or when the server exits. */
  async statsUntil(test: (values: Record<string, number>) => boolean, timeoutMs: number, what: string): Promise<StatsSample> {
    let seen = this.stats.length
    let found: StatsSample | undefined
    await until(
      () => {
        for (; seen < this.stats.length && !found; seen++) if (test(this.stats[seen]!.values)) found = this.stats[seen]
        return found !== undefined
      },
      () => `a stats line with ${what}; the last: ${JSON.stringify(this.stats.at(-1)?.values)}`,
      {timeoutMs, everyMs: 1000, changes: this.statsChanges, stop: () => !this.alive && `the server exited (${this.exitCode}):\n${this.cli.lines.slice(-10).join('\n')}\n`},
    )
    return found!
  }

}

// ---------------------------------------------------------------- test-sub and test-pub

/** Resolves once every test-sub says all its subscriptions are live (or failed); rejects when one exits first. */
export async function subscribersLive(procs: SubProcess[], timeoutMs: number): Promise<void> {
  let done = false
  try {
    await Promise.race([
      until(
        () => procs.every((p) => p.lastLineAt > 0 && p.connected + p.failed >= p.requested),
        () => `every subscription live (${procs.reduce((n, p) => n + p.connected, 0)} of ${procs.reduce((n, p) => n + p.requested, 0)} are)`,
        {timeoutMs, everyMs: 100},
      ),
      ...procs.map((p) =>
        p.cli.exit.then((code) => {
          if (!done) throw new Error(`${p.cli.label} exited (${code}) before its subscriptions were live:\n${p.cli.lines.slice(-5).join('\n')}`)
        }),
      ),
    ])
  } finally {
    done = true
  }
}

/**
 * Waits until every test-sub has reported a whole second, begun after
 * `since`, with nothing received, and (given the server's `port`) nothing the
 * server sent waits unread in a socket queue between them: neither in the
 * server's send queues nor in its clients' receive queues. A test-sub counts
 * what it reads as it reads it, so then it has counted all the server handed
 * to the kernel: a quiet second alone can come from a test-sub that was not
 * scheduled for one. At most `limitMs`; returns false if they were still
 * receiving.
 */
export async function drained(procs: SubProcess[], since: number, limitMs: number, port?: number): Promise<boolean> {
  try {
    await until(
      () => procs.every((p) => p.lastLineAt > since + 1050 && p.lastRate === 0) && (port === undefined || unreceived(port) === 0),
      'the subscribers to drain',
      {timeoutMs: limitMs, everyMs: 50},
    )
    return true
  } catch {
    return false
  }
}

/** SIGTERM (test-sub then prints its JSON document and exits: 0 unless it lost messages or a connection failed). */
export async function stopTestSub(proc: SubProcess): Promise<{report: TestSubReport; code: number | NodeJS.Signals}> {
  await stop(proc.cli.child, 15_000)
  const code = await proc.cli.exit
  return {report: jsonOf<TestSubReport>(proc.cli), code}
}

/** `msgbus test-pub -c CHANNEL -r RATE -d SECONDS --json` in its own process. */
export function startTestPub(runJs: string, url: string, channel: string, rate: number, seconds: number, label = 'test-pub', channels = 1): Cli {
  // Four connections: one publish in flight on each, so a slow answer (a fan-out, a GC pause) does not hold up the rate.
  const args = ['test-pub', '--url', url, '-c', channel, '--channels', String(channels), '--connections', '4', '-r', String(rate), '-d', String(seconds), '--interval', '5', '--json']
  const cli = runCli(runJs, label, args, (seconds + 40) * 1000)
  // Bounded: stopped if it overruns its duration by 30 s.
  const timer = setTimeout(() => void stop(cli.child, 5000), (seconds + 30) * 1000)
  void cli.exit.then(() => clearTimeout(timer))
  return cli
}

export async function pubReport(cli: Cli): Promise<{report: TestPubReport; code: number | NodeJS.Signals}> {
  const code = await cli.exit
  return {report: jsonOf<TestPubReport>(cli), code}
}

// ---------------------------------------------------------------- the churner

export type ChurnMode = 'rst' | 'fin' | 'mid-head'

export interface ChurnCounts {
  /** Connections started. */
  opened: number
  /** Those whose subscription opened (a 200 came) before they left. */
  streamed: number
  /** Left by RST (SO_LINGER 0) after the whole request head. */
  rst: number
  /** Left by a clean FIN after the whole request head. */
  fin: number
  /** Left (half by RST, half by FIN) in the middle of the request head. */
  midHead: number
  /** Mid-head connections that the server answered with 400 after their FIN (the head was cut short: a fair answer). */
  midHeadAnswered: number
  /** Answered with anything but 200 (refused: 503 and the like), mid-head FINs' 400 aside. */
  refused: number
  /** Connections that could not be made. */
  connectErrors: number
  /** After our FIN, the server had not closed its side when the churn stopped and did not within `finWaitMs` after. */
  finUnanswered: number
  /** From connect to the 200 that opens a subscription, ms: p50, p99, max over the subscriptions that opened. */
  answerMs: {p50: number; p99: number; max: number}
  /** From our FIN to the server closing its side, ms: p50, p99, max. */
  finCloseMs: {p50: number; p99: number; max: number}
  /** The first few errors, for the report. */
  errors: string[]
}

const MODES: ChurnMode[] = ['rst', 'fin', 'mid-head']

/**
 * Subscribers that come and go: `rate` connections a second (on an absolute
 * schedule), each subscribing to `path`, holding a random 0-`maxHoldMs` ms,
 * then leaving, in turn by RST, by a clean FIN, or part-way through its
 * request head (then by RST or FIN). Whatever the server sends them is read
 * and thrown away. Connections come from `sources` (loopback addresses) in
 * turn, so they do not use up one address's ephemeral ports. The holds come
 * from `random` (a seeded source replays a run's choices; Math.random by
 * default).
 *
 * A FIN the server has not answered yet is waited for, however long a busy
 * machine takes: only one still unanswered `finWaitMs` after stop() counts
 * (finUnanswered). How long they took is in finCloseMs.
 *
 * At most `maxOpen` are open at once (by default four times what the rate
 * and holds make: past that the server is not letting go). With `holdFrom:
 * 'answer'` the RST and FIN ones hold from the server's answer rather than
 * from connecting, so a connection counts as open until the server has
 * handled it: when the server falls behind, the churn slows to what it
 * takes, instead of piling up connections the server has yet to read (which
 * a busy machine turns into minutes of backlog).
 */
export class Churner {
  readonly counts: ChurnCounts = {opened: 0, streamed: 0, rst: 0, fin: 0, midHead: 0, midHeadAnswered: 0, refused: 0, connectErrors: 0, finUnanswered: 0,
    answerMs: {p50: Number.NaN, p99: Number.NaN, max: Number.NaN}, finCloseMs: {p50: Number.NaN, p99: Number.NaN, max: Number.NaN}, errors: []}
  private readonly answerTimes: number[] = []
  private readonly finCloseTimes: number[] = []
  private readonly open = new Set<Socket>()
  private timer: NodeJS.Timeout | undefined
  private started = 0
  private readonly sources: string[]
  private readonly maxHoldMs: number
  private readonly maxOpen: number
  private readonly holdFromAnswer: boolean
  private readonly random: () => number
  private readonly finWaitMs: number
  /** Connections that sent their FIN, waiting for the server's; by when it was sent. */
  private readonly finWaiting = new Map<Socket, number>()

  constructor(
    private readonly port: number,
    private readonly path: string,
    private readonly rate: number,
    options: {maxHoldMs?: number; sources?: string[]; random?: () => number; finWaitMs?: number; maxOpen?: number; holdFrom?: 'connect' | 'answer'} = {},
  ) {
    this.maxHoldMs = options.maxHoldMs ?? 500
    this.random = options.random ?? Math.random
    this.finWaitMs = options.finWaitMs ?? 60_000
    this.sources = options.sources ?? Array.from({length: 20}, (_, i) => `127.0.0.${101 + i}`)
    // Held 0-maxHold ms, so about rate × maxHold / 2 at once; past four times that the server is not letting go.
    this.maxOpen = options.maxOpen ?? Math.max(100, Math.ceil((4 * rate * this.maxHoldMs) / 1000))
    this.holdFromAnswer = options.holdFrom === 'answer'
  }

  /** Connections open now. */
  get current(): number {
    return this.open.size
  }

  start(): void {
    if (this.rate <= 0 || this.timer) return
    this.started = performance.now()
    const base = this.counts.opened
    this.timer = setInterval(() => {
      const due = base + Math.floor(((performance.now() - this.started) / 1000) * this.rate)
      while (this.counts.opened < due && this.open.size < this.maxOpen) this.one()
    }, 5)
  }

  /**
   * Stops opening; those still open that have not sent their FIN leave by
   * RST. Those waiting for the server's FIN are given `finWaitMs` to get it;
   * any still waiting then are counted in finUnanswered and destroyed.
   * Resolves once every connection is closed.
   */
  async stop(): Promise<ChurnCounts> {
    clearInterval(this.timer)
    this.timer = undefined
    for (const socket of this.open) if (!this.finWaiting.has(socket)) resetOrDestroy(socket)
    await until(() => this.finWaiting.size === 0, 'the server to answer every FIN', this.finWaitMs).catch(() => {
      const unanswered = [...this.finWaiting.keys()]
      this.finWaiting.clear()
      for (const socket of unanswered) {
        this.counts.finUnanswered++
        this.error(`the server did not close a connection within ${this.finWaitMs / 1000} s of the end of the churn, after the client's FIN`)
        socket.destroy()
      }
    })
    await until(() => this.open.size === 0, 'every churned connection to close', 5000).catch(() => undefined)
    this.counts.answerMs = percentiles(this.answerTimes)
    this.counts.finCloseMs = percentiles(this.finCloseTimes)
    return this.counts
  }

  private error(text: string): void {
    if (this.counts.errors.length < 5 && !this.counts.errors.includes(text)) this.counts.errors.push(text)
  }

  private one(): void {
    const index = this.counts.opened++
    const mode = MODES[index % MODES.length]!
    const hold = this.random() * this.maxHoldMs
    const socket = connect({host: '127.0.0.1', port: this.port, localAddress: this.sources[index % this.sources.length]})
    this.open.add(socket)
    let connected = false
    let answered = false
    let holdTimer: NodeJS.Timeout | undefined
    let finSent = 0
    let connectedAt = 0
    const startHold = () => {
      holdTimer = setTimeout(() => {
        const rst = mode === 'rst' || (mode === 'mid-head' && index % 2 === 0)
        if (mode === 'rst') this.counts.rst++
        else if (mode === 'fin') this.counts.fin++
        else this.counts.midHead++
        if (rst) {
          resetOrDestroy(socket)
          return
        }

        finSent = performance.now()
        this.finWaiting.set(socket, finSent)
        socket.end()
      }, hold)
    }

    socket.setNoDelay(true)
    socket.on('connect', () => {
      connected = true
      connectedAt = performance.now()
      // mid-head: a request head that stops half-way through a header line.
      socket.write(mode === 'mid-head' ? `GET ${this.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: churn` : `GET ${this.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
      if (mode === 'mid-head' || !this.holdFromAnswer) startHold()
    })
    socket.on('data', (chunk: Buffer) => {
      if (answered) return
      answered = true
      if (mode !== 'mid-head' && this.holdFromAnswer) startHold()
      const status = chunk.subarray(0, 13).toString('latin1')
      if (status === 'HTTP/1.1 200 ') {
        this.counts.streamed++
        this.answerTimes.push(performance.now() - connectedAt)
      }
      else if (mode === 'mid-head' && finSent && status === 'HTTP/1.1 400 ') this.counts.midHeadAnswered++
      else {
        this.counts.refused++
        this.error(`answered ${JSON.stringify(chunk.subarray(0, 40).toString('latin1'))}`)
      }
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (!connected) {
        this.counts.connectErrors++
        this.error(`connect: ${error.code ?? error.message}`)
      }
    })
    socket.on('close', () => {
      // Answered, unless stop() gave up on it (it is no longer waiting then).
      if (this.finWaiting.delete(socket)) this.finCloseTimes.push(performance.now() - finSent)
      clearTimeout(holdTimer)
      this.open.delete(socket)
    })
  }
}

function percentiles(values: number[]): {p50: number; p99: number; max: number} {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!) : Number.NaN)
  return {p50: at(0.5), p99: at(0.99), max: sorted.length ? Math.round(sorted.at(-1)!) : Number.NaN}
}

function resetOrDestroy(socket: Socket): void {
  // resetAndDestroy() needs a connected TCP handle; before that, destroy() is all there is.
  if (socket.readyState === 'open' || socket.readyState === 'readOnly' || socket.readyState === 'writeOnly') socket.resetAndDestroy()
  else socket.destroy()
}
