/**
 * `msgbus serve --workers N`: the primary process. It serves no HTTP itself
 * (Node's cluster binds the bus's ports here and hands connections to the
 * workers in turn); it orders every worker's messages (sequencer.ts), holds
 * the history folder, forks a worker again when one dies, serves `--metrics`
 * and logs `--stats` for the whole cluster from the counters the workers
 * report, passes SIGHUP on, and on SIGINT or SIGTERM stops every worker (each
 * ends its streams with the shutdown notice) and exits 0.
 */
import cluster, {type Worker} from 'node:cluster'
import {once} from 'node:events'
import type {AddressInfo} from 'node:net'
import type {Server} from 'node:http'
import {MessageLog} from '../history/message-log.js'
import {SegmentStore} from '../history/segment-store.js'
import {startHorizon} from '../bus/embedded-link.js'
import {startTrim} from '../server/bus-server.js'
import type {ServerCounters} from '../server/ops/counters.js'
import {Readiness} from '../server/ops/health.js'
import {LatencyBuckets} from '../server/ops/latency-buckets.js'
import {LogLevel, type Logger} from '../server/ops/logger.js'
import {closeListener, createMetricsListener, parseMetricsAddress} from '../server/ops/metrics-listener.js'
import {startStats} from '../server/ops/stats.js'
import {DEFAULTS, type BusServerOptions} from '../server/options.js'
import {MsgbusError, messageOf} from '../util/errors.js'
import {VERSION} from '../version.js'
import {sumCounters} from './counters-sum.js'
import type {PrimarySays, WorkerSays} from './ipc.js'
import {Sequencer} from './sequencer.js'
import {COUNT_VARIABLE, SLOT_VARIABLE} from './worker.js'

/** A worker that lived this long before dying starts its slot's backoff afresh. */
const STABLE_MS = 10_000
const FIRST_DELAY_MS = 100
const MAX_DELAY_MS = 30_000
/** How long stopping workers get to end their streams before they are killed. */
const STOP_GRACE_MS = 10_000

interface Slot {
  number: number
  worker: Worker | undefined
  startedAt: number
  /** Deaths in a row, each soon after its start: the next fork waits longer. */
  failures: number
  served: boolean
  counters: ServerCounters | undefined
  timer: NodeJS.Timeout | undefined
}

export class ClusterPrimary {
  readonly readiness = new Readiness()
  private readonly sequencer: Sequencer
  private readonly slots: Slot[]
  private stopping = false
  /** Counters of workers that died, what they had done (their gauges left out): the cluster's totals do not go back. */
  private retired: ServerCounters | undefined
  private metricsServer: Server | undefined
  private stopStats = () => {}
  private stopTrim = () => {}
  private startWaiter: {resolve: () => void; reject: (error: Error) => void} | undefined

  constructor(
    private readonly options: BusServerOptions & {logger: Logger},
    readonly workers: number,
  ) {
    const resolved = {...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))}
    const log = new MessageLog({count: resolved.history, bytes: resolved.historyBytes, ageMs: resolved.historyAge * 1000}, startHorizon())
    if (options.historyDir !== undefined && !log.enabled) throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', '--history-dir needs --history above 0')
    const store = options.historyDir === undefined ? undefined : new SegmentStore(options.historyDir, resolved.historySync, options.logger)
    this.sequencer = new Sequencer(log, store)
    this.slots = Array.from({length: workers}, (_, i) => ({number: i + 1, worker: undefined, startedAt: 0, failures: 0, served: false, counters: undefined, timer: undefined}))
    this.readiness.add('workers', () => (this.serving === 0 ? `none of ${workers} workers is serving` : undefined))
    this.readiness.add('history', () => this.sequencer.failure)
    this.readiness.add('shutdown', () => (this.stopping ? 'the server is shutting down' : undefined))
  }

  private get logger(): Logger {
    return this.options.logger
  }

  /** Workers that have their window and serve. */
  get serving(): number {
    return this.slots.filter((slot) => slot.served && slot.worker !== undefined).length
  }

  /**
   * Reads the history, starts metrics, forks the workers and resolves once
   * every one serves. A worker that fails to start (a port in use, an ACL
   * with errors: it says why) stops them all; this then rejects with the
   * exit code it had.
   */
  async start(): Promise<void> {
    await this.sequencer.open()
    const {log} = this.sequencer
    if (this.options.historyDir !== undefined) this.logger.log(LogLevel.Always, 'history', `${log.size} messages from ${this.options.historyDir} (horizon ${log.horizon})`)
    if (this.options.metrics !== undefined) await this.startMetrics(this.options.metrics)
    this.stopStats = this.startStats((this.options.statsInterval ?? 0) * 1000)
    this.stopTrim = startTrim(log)
    cluster.setupPrimary({serialization: 'advanced'})
    const started = new Promise<void>((resolve, reject) => (this.startWaiter = {resolve, reject}))
    for (const slot of this.slots) this.fork(slot)
    await started
    const pids = this.slots.map((slot) => slot.worker?.process.pid).join(', ')
    this.logger.log(LogLevel.Always, 'listen', `${this.workers} workers serving (pids ${pids}), ordered by the primary (pid ${process.pid})`)
  }

  /** The cluster's stats line, and one line of each worker's share beside it (how the subscribers spread). */
  private startStats(intervalMs: number): () => void {
    const stopTotals = startStats(intervalMs, () => this.counters(), this.logger)
    if (intervalMs <= 0) return stopTotals
    const timer = setInterval(() => {
      const each = this.perWorker().map(({slot, pid, subscribers, connections}) => `${slot}:pid=${pid ?? '-'},subscribers=${subscribers},connections=${connections}`)
      this.logger.log(LogLevel.Always, 'workers', `serving=${this.serving}/${this.workers} ${each.join(' ')}`, {serving: this.serving, workers: this.perWorker()})
    }, intervalMs)
    timer.unref()
    return () => {
      stopTotals()
      clearInterval(timer)
    }
  }

  private fork(slot: Slot): void {
    slot.timer = undefined
    if (this.stopping) return
    const worker = cluster.fork({[SLOT_VARIABLE]: String(slot.number), [COUNT_VARIABLE]: String(this.workers)})
    slot.worker = worker
    slot.startedAt = Date.now()
    slot.served = false
    const id = worker.id
    this.sequencer.join(id, {
      send: (batch: PrimarySays[]) => {
        if (worker.isConnected()) worker.send(batch as unknown as Parameters<Worker['send']>[0])
      },
    })
    worker.on('message', (batch: WorkerSays[]) => {
      if (!Array.isArray(batch)) return
      for (const said of batch) {
        if (said.t === 'ready') this.ready(slot)
        else if (said.t === 'counters') slot.counters = said.counters
      }

      this.sequencer.hear(id, batch)
    })
    worker.on('error', (error) => this.logger.warn('worker', `worker ${slot.number}: ${messageOf(error)}`))
    worker.once('exit', (code, signal) => this.exited(slot, worker, code, signal))
  }

  private ready(slot: Slot): void {
    slot.served = true
    if (this.startWaiter && this.slots.every((each) => each.served)) {
      this.startWaiter.resolve()
      this.startWaiter = undefined
    }
  }

  private exited(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    this.sequencer.leave(worker.id)
    if (slot.worker === worker) slot.worker = undefined
    this.retire(slot)
    if (this.stopping) return
    const how = signal ? `was killed (${signal})` : `exited (code ${code})`
    if (this.startWaiter && !slot.served) {
      // Every worker would fail alike (the port, the ACL): the cluster does not start.
      this.logger.warn('worker', `worker ${slot.number} (pid ${worker.process.pid}) ${how} before it served; stopping`)
      const failed = this.startWaiter
      this.startWaiter = undefined
      void this.stopWorkers().then(() => failed.reject(new WorkerStartError(code ?? 1)))
      return
    }

    const lived = Date.now() - slot.startedAt
    slot.failures = lived >= STABLE_MS ? 0 : slot.failures + 1
    const delay = slot.failures <= 1 ? FIRST_DELAY_MS : Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** (slot.failures - 1))
    this.logger.warn('worker', `worker ${slot.number} (pid ${worker.process.pid}) ${how} after ${(lived / 1000).toFixed(1)} s; forking another in ${(delay / 1000).toFixed(1)} s`)
    slot.timer = setTimeout(() => this.fork(slot), delay)
  }

  /** A dead worker's totals stay in the cluster's; what it held now (subscribers, connections) goes. */
  private retire(slot: Slot): void {
    const last = slot.counters
    slot.counters = undefined
    slot.served = false
    if (!last) return
    const gone = {...last, subscribers: 0, channels: 0, connections: 0, bodyMemory: 0, history: {messages: 0, bytes: 0}}
    this.retired = sumCounters(this.retired ? [this.retired, gone] : [gone])
  }

  /** The cluster's counters: the workers' last reports and the dead ones' totals, the history the primary's. */
  counters(): ServerCounters {
    const reports = this.slots.flatMap((slot) => (slot.counters ? [slot.counters] : []))
    const sum = sumCounters(this.retired ? [this.retired, ...reports] : reports) ?? emptyCounters()
    const {log, published, publishedBytes} = this.sequencer
    return {...sum, published, publishedBytes, history: {messages: log.size, bytes: log.bytes}}
  }

  /** Subscribers of each worker, by slot, as last reported. */
  perWorker(): Array<{slot: number; pid: number | undefined; subscribers: number; connections: number}> {
    return this.slots.map((slot) => ({
      slot: slot.number,
      pid: slot.worker?.process.pid,
      subscribers: slot.counters?.subscribers ?? 0,
      connections: slot.counters?.connections ?? 0,
    }))
  }

  /** SIGHUP: every worker re-reads its certificate and ACL (and logs what it did). */
  reload(): void {
    for (const slot of this.slots) slot.worker?.process.kill('SIGHUP')
  }

  /** Stops every worker (each ends its streams properly), then the history and metrics. */
  async stop(why: string): Promise<void> {
    if (this.stopping) return
    this.logger.log(LogLevel.Always, 'stop', `${why}: stopping ${this.serving} workers`)
    await this.stopWorkers()
    this.stopStats()
    this.stopTrim()
    await this.sequencer.close().catch((error: unknown) => this.logger.warn('history', messageOf(error)))
    await this.closeMetrics()
  }

  private async stopWorkers(): Promise<void> {
    this.stopping = true
    const live: Worker[] = []
    for (const slot of this.slots) {
      clearTimeout(slot.timer)
      if (slot.worker && !slot.worker.isDead()) live.push(slot.worker)
    }

    for (const worker of live) worker.process.kill('SIGTERM')
    const killer = setTimeout(() => {
      for (const worker of live) if (!worker.isDead()) worker.process.kill('SIGKILL')
    }, STOP_GRACE_MS)
    await Promise.all(live.map((worker) => (worker.isDead() ? undefined : once(worker, 'exit'))))
    clearTimeout(killer)
  }

  private async startMetrics(address: string): Promise<void> {
    const at = parseMetricsAddress(address)
    const {clusterMetrics} = await import('./cluster-metrics.js')
    const metrics = clusterMetrics(this)
    const server = createMetricsListener({readiness: this.readiness, scrape: () => metrics.scrape(), serverHeader: `msgbus/${VERSION}`})
    this.metricsServer = server
    server.listen({port: at.port, host: at.host})
    try {
      await once(server, 'listening')
    } catch (error) {
      const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
      const where = `${at.host}:${at.port}`
      throw new MsgbusError(inUse ? 'ERR_MSGBUS_PORT_IN_USE' : 'ERR_MSGBUS_LISTEN_FAILED', inUse ? `metrics port ${where} is already in use` : `cannot listen on ${where} for metrics: ${messageOf(error)}`, {cause: error})
    }

    const bound = server.address() as AddressInfo
    this.logger.log(LogLevel.Always, 'listen', `metrics on ${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port} (/metrics, /livez, /readyz)`)
  }

  private async closeMetrics(): Promise<void> {
    const server = this.metricsServer
    this.metricsServer = undefined
    await closeListener(server)
  }
}

/** A worker could not start: the primary exits with its code (the worker said why). */
export class WorkerStartError extends Error {
  constructor(readonly exitCode: number) {
    super(`a worker exited with code ${exitCode} before it served`)
  }
}

function emptyCounters(): ServerCounters {
  return {
    published: 0,
    publishedBytes: 0,
    delivered: 0,
    subscribers: 0,
    channels: 0,
    dropped: 0,
    slowDisconnects: 0,
    connections: 0,
    connectionsRefused: 0,
    logins: {failed: 0, refused: 0, cached: 0, hashes: {}},
    bodyMemory: 0,
    bodyRefusals: 0,
    history: {messages: 0, bytes: 0},
    deliveries: {multipart: 0, sse: 0, ndjson: 0, raw: 0},
    bytesOut: 0,
    answers: {},
    publishLatency: new LatencyBuckets().snapshot(),
  }
}
