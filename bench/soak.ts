/**
 * `npm run soak`: the soak test of issue 6. Runs `msgbus serve` for a long
 * while under steady load and churn, and fails when anything was lost or the
 * server's memory grew.
 *
 *   npm run soak                                   # 600 s, 10,000 subscribers over 20 channels, 100 msg/s, churn 100/s
 *   npm run soak -- --duration 60 --json
 *   npm run soak -- --duration 30 --subscribers 2000 --rate 50 --churn 200 --no-build
 *
 * Every part is its own process, as in bench/fanout.ts: the server (`msgbus
 * serve --stats 5`, with a live-heap probe: tools/proc.ts GC_PROBE_NODE_ARGS),
 * the steady subscribers (`msgbus test-sub`, split over --sub-processes), the
 * publisher (`msgbus test-pub -r RATE -d DURATION`); the churner (raw sockets
 * that subscribe, hold a random 0-500 ms and leave by RST, FIN or mid-head)
 * runs in this process. Loopback only, bounded in time; every child is
 * stopped on any exit path (SIGINT included). See bench/README.md, "Soak".
 *
 * Exit status: 0 only with no loss and no growth; 1 when the verdict fails;
 * 2 when the run could not be made (usage, build, server did not start).
 */
import {parseArgs} from 'node:util'
import {exitOnHelp, numberOption} from './args.js'
import {performance} from 'node:perf_hooks'
import type {TestPubReport, TestSubReport} from '../src/lib/load/report.js'
import {Churner, drained, pubReport, Serve, startTestPub, stopTestSub, subscribersLive, type ChurnCounts} from '../tools/load-run.js'
import {prepareCli, startTestSub, stop, stopAll, type Cli, type SubProcess} from '../tools/processes.js'
import {newSeed, seededRandom} from '../tools/random.js'
import {sleep} from '../tools/wait.js'
import {grouped, median} from '../tools/figures.js'

const MiB = 1024 * 1024

function log(text: string): void {
  process.stderr.write(`soak: ${text}\n`)
}

// ---------------------------------------------------------------- options

const HELP = `usage: npm run soak -- [options]

Runs \`msgbus serve --stats 5\` (its own process) for --duration seconds with
--subscribers steady subscribers (test-sub processes) spread over --channels
channels, test-pub publishing --rate msg/s to those channels in turn, and a
churner opening --churn subscriptions a second that hold 0-500 ms and leave
by RST, FIN or mid-head. Prints a line every interval
and a summary; exits 0 only with no loss and no growth.

Options:
  --duration S        seconds of publishing and churn (default 600)
  --subscribers N     steady subscribers (default 10000)
  --rate R            messages/s test-pub publishes, to the channels in turn (default 100)
  --channels K        channels soak-0 ... soak-(K-1) the subscribers are spread over (default 20:
                      each message reaches 500 of them, 100 msg/s × 500 = 50,000
                      deliveries/s; one channel at 100 msg/s would be a million, several
                      times what 2 cores carry)
  --churn C           churned connections opened per second (default 100; 0: none)
  --sub-processes P   test-sub processes the subscribers are split over (default 2)
  --interval S        seconds between stats lines and printed lines (default 5)
  --warmup S          seconds at the start left out of the growth check (default: a quarter
                      of --duration, at least one interval, at most 60)
  --server-arg ARG    extra argument for \`msgbus serve\` (repeatable)
  --seed N            seed of the churner's random holds (default: a new one, printed), to replay a run's choices
  --no-build          use dist/ as it is instead of running \`npm run build\` first
  --json              also print the results as one JSON document on stdout
`

interface Options {
  duration: number
  subscribers: number
  rate: number
  channels: number
  churn: number
  subProcesses: number
  interval: number
  warmup: number
  serverArgs: string[]
  seed: number
  build: boolean
  json: boolean
}

function parseOptions(argv: string[]): Options {
  const {values} = parseArgs({
    args: argv,
    options: {
      duration: {type: 'string'},
      subscribers: {type: 'string'},
      rate: {type: 'string'},
      channels: {type: 'string'},
      churn: {type: 'string'},
      'sub-processes': {type: 'string'},
      interval: {type: 'string'},
      warmup: {type: 'string'},
      'server-arg': {type: 'string', multiple: true},
      seed: {type: 'string'},
      'no-build': {type: 'boolean'},
      json: {type: 'boolean'},
      help: {type: 'boolean', short: 'h'},
    },
    strict: true,
  })
  exitOnHelp(values.help, HELP)
  const duration = numberOption(values.duration, 'duration', 600, 5)
  const interval = numberOption(values.interval, 'interval', 5, 1)
  const subscribers = numberOption(values.subscribers, 'subscribers', 10_000, 1)
  return {
    duration,
    subscribers,
    rate: numberOption(values.rate, 'rate', 100, 1),
    channels: numberOption(values.channels, 'channels', 20, 1),
    churn: numberOption(values.churn, 'churn', 100, 0),
    subProcesses: Math.min(subscribers, numberOption(values['sub-processes'], 'sub-processes', 2, 1)),
    interval,
    warmup: numberOption(values.warmup, 'warmup', Math.min(60, Math.max(interval, Math.round(duration / 4))), 0),
    serverArgs: values['server-arg'] ?? [],
    seed: numberOption(values.seed, 'seed', newSeed(), 0),
    build: !values['no-build'],
    json: values.json ?? false,
  }
}

// ---------------------------------------------------------------- the run

/**
 * Deliveries due when test-pub sent `published` messages to K channels in
 * turn (message n to channel n mod K) and each test-sub process's
 * connection j subscribed to channel j mod K.
 */
function expectedDeliveries(published: number, perProcess: number[], channels: number): number {
  let total = 0
  for (let c = 0; c < channels; c++) {
    const messages = published > c ? Math.floor((published - c - 1) / channels) + 1 : 0
    const subscribers = perProcess.reduce((n, count) => n + (count > c ? Math.floor((count - c - 1) / channels) + 1 : 0), 0)
    total += messages * subscribers
  }

  return total
}

/** One interval: the server's stats line, its live heap just after, its RSS from /proc. */
interface Sample {
  /** Seconds since publishing began (negative before). */
  t: number
  rss: number
  /** heapUsed as the stats line shows it (garbage included), bytes. */
  heap: number
  /** heapUsed after a full collection (the probe), bytes; NaN if it did not answer. */
  liveHeap: number
  external: number
  /** How long the probe's full collection took, ms. */
  gcMs: number
  loopP50: number
  loopP99: number
  loopMax: number
  subscribers: number
  deliveriesPerSecond: number
  churned: number
}

/** Growth tolerances: the last quarter's median may exceed the first quarter's (after warm-up) by this much. */
export const TOLERANCE = {
  rss: {mib: 16, fraction: 0.1},
  liveHeap: {mib: 4, fraction: 0.05},
}

const allowed = (base: number, t: {mib: number; fraction: number}): number => Math.max(t.mib * MiB, base * t.fraction)

interface Result {
  options: Options
  started: string
  elapsed_s: number
  server: {exit: number | string | null; stop_ms: number; slow: number; dropped: number; warnings: string[]; crashed: boolean}
  publisher: TestPubReport & {exit: number | string}
  subscribers: {
    processes: number
    requested: number
    connected: number
    failed: number
    reconnects: number
    received: number
    expected: number
    lost: number
    duplicates: number
    out_of_order: number
    exits: Array<number | string>
    latency_ms_p99: number[]
    errors: string[]
    connect_s: number
    drained: boolean
  }
  churn: ChurnCounts & {subscribers_after: number | null}
  memory: {
    first: Sample | null
    after_warmup: Sample | null
    max_rss: number
    max_heap: number
    last: Sample | null
    first_quarter: {from_s: number; to_s: number; samples: number; rss: number; live_heap: number}
    last_quarter: {from_s: number; to_s: number; samples: number; rss: number; live_heap: number}
    rss_growth: number
    rss_allowed: number
    live_heap_growth: number
    live_heap_allowed: number
  }
  loop_p99_ms: {max: number; median: number}
  samples: Sample[]
  verdict: {pass: boolean; reasons: string[]}
}

const mib = (bytes: number, digits = 1): string => (Number.isFinite(bytes) ? (bytes / MiB).toFixed(digits) : '–')
const signed = (bytes: number): string => (Number.isFinite(bytes) ? `${bytes >= 0 ? '+' : ''}${mib(bytes)}` : '–')

async function soak(options: Options): Promise<Result> {
  const started = performance.now()
  const runJs = prepareCli(options.build)
  const {duration, subscribers, rate, churn, interval} = options
  const connectAllowance = 30 + subscribers / 300
  // The whole run's bound: connecting, publishing, draining and stopping, with time to spare.
  const lifetimeSeconds = connectAllowance + duration + 120
  const watchdog = setTimeout(() => {
    log(`overran its ${Math.round(lifetimeSeconds)} s bound; stopping`)
    void stopAll(1000).finally(() => process.exit(2))
  }, lifetimeSeconds * 1000 + 30_000)
  watchdog.unref()

  log(
    `${grouped(subscribers)} subscribers (${options.subProcesses} test-sub processes) over ${options.channels} channel(s), ${rate} msg/s, churn ${churn}/s (--seed ${options.seed}), ${duration} s; ` +
      `\`msgbus serve --stats ${interval}${options.serverArgs.length ? ` ${options.serverArgs.join(' ')}` : ''}\``,
  )
  const server = await Serve.start(runJs, ['--stats', String(interval), ...options.serverArgs], lifetimeSeconds * 1000)
  log(`server pid ${server.pid} on ${server.url}`)
  const samples: Sample[] = []
  let publishingAt = Number.NaN
  let churner: Churner | undefined
  server.onStats = ({at, values}) => {
    const sample: Sample = {
      t: Number.isNaN(publishingAt) ? Number.NaN : (at - publishingAt) / 1000,
      rss: server.rss(),
      heap: values.heap! * MiB,
      liveHeap: Number.NaN,
      external: Number.NaN,
      gcMs: Number.NaN,
      loopP50: values['loop-p50']!,
      loopP99: values['loop-p99']!,
      loopMax: values['loop-max']!,
      subscribers: values.subscribers!,
      deliveriesPerSecond: values['deliver/s']!,
      churned: churner?.counts.opened ?? 0,
    }
    if (!Number.isFinite(sample.rss)) sample.rss = values.rss! * MiB
    samples.push(sample)
    server.probe(4000).then(
      (probe) => {
        sample.liveHeap = probe.heap
        sample.external = probe.external
        sample.gcMs = probe.gcMs
        printSample(sample)
      },
      () => printSample(sample),
    )
  }

  const result = {options, started: new Date().toISOString()} as Result
  const subs: SubProcess[] = []
  let pub: Cli | undefined
  try {
    // A first sample of the fresh server.
    await server.statsUntil(() => true, (interval + 5) * 1000, 'a first stats line')

    // The steady subscribers, all live before anything is published.
    const connectStarted = performance.now()
    for (let i = 0; i < options.subProcesses; i++) {
      const requested = Math.floor(subscribers / options.subProcesses) + (i < subscribers % options.subProcesses ? 1 : 0)
      const label = options.subProcesses > 1 ? `test-sub ${i + 1}/${options.subProcesses}` : 'test-sub'
      subs.push(startTestSub(runJs, server.url, 'soak', requested, label, lifetimeSeconds, {channels: options.channels}))
    }

    await subscribersLive(subs, connectAllowance * 1000)
    const connectSeconds = (performance.now() - connectStarted) / 1000
    log(`${grouped(subs.reduce((n, p) => n + p.connected, 0))} subscriptions live in ${connectSeconds.toFixed(1)} s`)

    // Publishing and churn, for the duration.
    // The churned subscriptions take a channel that messages go to: some leave while being written to.
    churner = new Churner(server.port, options.channels > 1 ? '/msgbus/soak-0' : '/msgbus/soak', churn, {random: seededRandom(options.seed).next})
    pub = startTestPub(runJs, server.url, 'soak', rate, duration, 'test-pub', options.channels)
    publishingAt = performance.now()
    churner.start()
    const crashed = server.cli.exit.then((code) => {
      throw new Error(`the server exited (${code}) during the run\n${server.cli.lines.slice(-10).join('\n')}`)
    })
    const published = await Promise.race([pubReport(pub), crashed])
    const pubEnded = performance.now()
    const churnCounts = await churner.stop()
    log(`test-pub ended (${grouped(published.report.published)} published); churn stopped after ${grouped(churnCounts.opened)} connections`)

    // Everything delivered: the subscribers have a quiet second; the churned connections are gone.
    const drainedOk = await drained(subs, pubEnded, Math.max(15_000, interval * 3000), server.port)
    let subscribersAfter: number | null = null
    try {
      subscribersAfter = (await server.statsUntil((v) => v.subscribers === subscribers, (interval * 3 + 5) * 1000, `subscribers=${subscribers}`)).values.subscribers!
    } catch {
      subscribersAfter = server.stats.at(-1)?.values.subscribers ?? null
    }

    // One more sample, so that the last quarter ends after the churn.
    await server.statsUntil(() => true, (interval + 5) * 1000, 'a last stats line').catch(() => undefined)
    await sleep(500)

    const reports = await Promise.all(subs.map((p) => stopTestSub(p)))
    const crashedBefore = !server.alive
    const stopStarted = performance.now()
    const stopped = await stop(server.cli.child, 15_000)
    const serverExit = await server.cli.exit
    const last = server.stats.at(-1)?.values ?? {}
    result.server = {
      exit: serverExit,
      stop_ms: Number.isNaN(stopped) ? Number.NaN : Math.round(performance.now() - stopStarted),
      slow: last.slow ?? Number.NaN,
      dropped: last.dropped ?? Number.NaN,
      warnings: server.warnings,
      crashed: crashedBefore,
    }
    result.publisher = {...published.report, exit: published.code}
    const sum = (of: (r: TestSubReport) => number): number => reports.reduce((n, {report}) => n + of(report), 0)
    result.subscribers = {
      processes: subs.length,
      requested: subscribers,
      connected: sum((r) => r.connections.connected),
      failed: sum((r) => r.connections.failed),
      reconnects: sum((r) => r.reconnects),
      received: sum((r) => r.received),
      expected: expectedDeliveries(published.report.published, subs.map((p) => p.requested), options.channels),
      lost: sum((r) => r.lost),
      duplicates: sum((r) => r.duplicates),
      out_of_order: sum((r) => r.out_of_order),
      exits: reports.map((r) => r.code),
      latency_ms_p99: reports.map((r) => r.report.latency_ms.p99),
      errors: reports.flatMap((r) => r.report.errors ?? []),
      connect_s: Math.round(connectSeconds * 10) / 10,
      drained: drainedOk,
    }
    result.churn = {...churnCounts, subscribers_after: subscribersAfter}
  } catch (error) {
    result.server ??= {exit: server.exitCode ?? null, stop_ms: Number.NaN, slow: Number.NaN, dropped: Number.NaN, warnings: server.warnings, crashed: !server.alive}
    result.server.crashed = !server.alive && server.exitCode !== 0
    throw Object.assign(error as Error, {partial: finish(result, samples, options, started)})
  } finally {
    await churner?.stop()
    if (pub) await stop(pub.child, 3000)
    await Promise.all(subs.map((p) => stop(p.cli.child, 3000)))
    await stop(server.cli.child, 5000)
    await stopAll(1000)
    clearTimeout(watchdog)
  }

  return finish(result, samples, options, started)
}

function printSample(s: Sample): void {
  const t = Number.isNaN(s.t) ? '   –' : `${s.t.toFixed(0).padStart(4)}`
  log(
    `${t} s  rss ${mib(s.rss).padStart(6)} MiB  heap ${mib(s.heap).padStart(5)} MiB (live ${mib(s.liveHeap).padStart(5)})  ` +
      `loop p99 ${s.loopP99.toFixed(1).padStart(5)} ms  subscribers ${grouped(s.subscribers).padStart(6)}  ` +
      `deliveries/s ${grouped(s.deliveriesPerSecond).padStart(7)}  churned ${grouped(s.churned)}`,
  )
}

/** The figures and the verdict. */
function finish(result: Result, samples: Sample[], options: Options, started: number): Result {
  const {duration, warmup} = options
  result.elapsed_s = Math.round((performance.now() - started) / 100) / 10
  result.samples = samples
  const during = samples.filter((s) => s.t >= 0)
  const window = (from: number, to: number) => {
    const inside = samples.filter((s) => s.t >= from && s.t <= to)
    return {from_s: from, to_s: to, samples: inside.length, rss: median(inside.map((s) => s.rss)), live_heap: median(inside.map((s) => s.liveHeap))}
  }

  // Quarters of the run: the first after warm-up, and the last (which ends with the sample after publishing stopped).
  const quarter = duration / 4
  const first = window(warmup, warmup + quarter)
  const last = window(duration - quarter, duration + options.interval * 1.5)
  const afterWarmup = samples.find((s) => s.t >= warmup) ?? null
  const rssAllowed = allowed(first.rss, TOLERANCE.rss)
  const heapAllowed = allowed(first.live_heap, TOLERANCE.liveHeap)
  result.memory = {
    first: samples[0] ?? null,
    after_warmup: afterWarmup,
    max_rss: Math.max(...samples.map((s) => s.rss)),
    max_heap: Math.max(...samples.map((s) => s.heap)),
    last: samples.at(-1) ?? null,
    first_quarter: first,
    last_quarter: last,
    rss_growth: last.rss - first.rss,
    rss_allowed: rssAllowed,
    live_heap_growth: last.live_heap - first.live_heap,
    live_heap_allowed: heapAllowed,
  }
  const p99s = during.map((s) => s.loopP99)
  result.loop_p99_ms = {max: p99s.length ? Math.max(...p99s) : Number.NaN, median: median(p99s)}

  const reasons: string[] = []
  const sub = result.subscribers
  if (result.server?.crashed) reasons.push(`the server exited by itself (${result.server.exit}) before it was stopped`)
  if (!sub) reasons.push('the run did not finish')
  else {
    if (sub.received !== sub.expected) reasons.push(`received ${grouped(sub.received)} of ${grouped(sub.expected)} expected`)
    if (sub.lost || sub.duplicates || sub.out_of_order) reasons.push(`lost ${sub.lost}, duplicates ${sub.duplicates}, out of order ${sub.out_of_order}`)
    if (sub.failed || sub.reconnects) reasons.push(`${sub.failed} subscriptions failed, ${sub.reconnects} reconnects`)
    if (sub.exits.some((code) => code !== 0)) reasons.push(`test-sub exited ${sub.exits.join(', ')}`)
    if (result.publisher.errors || result.publisher.exit !== 0) reasons.push(`test-pub: ${result.publisher.errors} errors, exit ${result.publisher.exit}`)
    if (result.publisher.published < 0.95 * options.rate * duration) reasons.push(`test-pub published ${result.publisher.published} of ${options.rate * duration} (could not keep the rate)`)
    if (result.churn.subscribers_after !== options.subscribers) reasons.push(`after the churn the server still counts ${result.churn.subscribers_after} subscribers (expected ${options.subscribers})`)
    if (result.churn.connectErrors || result.churn.refused || result.churn.finUnanswered) {
      reasons.push(`churn: ${result.churn.connectErrors} connect errors, ${result.churn.refused} refused, ${result.churn.finUnanswered} FINs unanswered`)
    }

    if (result.server.exit !== 0 && !result.server.crashed) reasons.push(`the server exited ${result.server.exit} on SIGTERM`)
  }

  const m = result.memory
  if (first.samples === 0 || last.samples === 0 || !Number.isFinite(first.live_heap) || !Number.isFinite(last.live_heap)) {
    reasons.push(`too few samples to judge growth (first quarter ${first.samples}, last quarter ${last.samples}): run longer`)
  } else {
    if (m.rss_growth > m.rss_allowed) reasons.push(`RSS grew ${signed(m.rss_growth)} MiB (allowed ${mib(m.rss_allowed)})`)
    if (m.live_heap_growth > m.live_heap_allowed) reasons.push(`live heap grew ${signed(m.live_heap_growth)} MiB (allowed ${mib(m.live_heap_allowed)})`)
  }

  result.verdict = {pass: reasons.length === 0, reasons}
  return result
}

function summary(r: Result): string {
  const o = r.options
  const lines: string[] = []
  const sub = r.subscribers
  const c = r.churn
  const m = r.memory
  lines.push(
    `\nmsgbus soak: ${o.duration} s, ${grouped(o.subscribers)} subscribers in ${o.subProcesses} test-sub process${o.subProcesses > 1 ? 'es' : ''}, ` +
      `${o.channels} channel(s), ${o.rate} msg/s, churn ${o.churn}/s (--seed ${o.seed}); loopback; ${r.elapsed_s} s in all`,
  )
  if (sub) {
    lines.push(
      `loss:       received ${grouped(sub.received)} of ${grouped(sub.expected)} expected (published ${grouped(r.publisher.published)}, each to the subscribers of its channel); ` +
        `lost ${sub.lost}, duplicates ${sub.duplicates}, out of order ${sub.out_of_order}, failed connections ${sub.failed}, reconnects ${sub.reconnects}; ` +
        `publish errors ${r.publisher.errors}; test-sub exits ${sub.exits.join(', ')}; latency p99 ms ${sub.latency_ms_p99.join(', ')}; live in ${sub.connect_s} s` +
        (sub.drained ? '' : '; still receiving when stopped'),
    )
    lines.push(
      `churn:      ${grouped(c.opened)} connections (${grouped(c.rst)} RST, ${grouped(c.fin)} FIN, ${grouped(c.midHead)} mid-head; ${grouped(c.streamed)} streamed before leaving, ` +
        `${grouped(c.midHeadAnswered)} mid-head ones answered 400 after their FIN); ` +
        `refused ${c.refused}, connect errors ${c.connectErrors}, FINs unanswered ${c.finUnanswered}; ` +
        `connect → 200 ms p50 ${c.answerMs.p50} p99 ${c.answerMs.p99} max ${c.answerMs.max}; our FIN → the server's ms p50 ${c.finCloseMs.p50} p99 ${c.finCloseMs.p99} max ${c.finCloseMs.max}; ` +
        `subscribers after: ${c.subscribers_after ?? '–'} (expected ${grouped(o.subscribers)})` +
        (c.errors.length ? `; ${c.errors.join('; ')}` : ''),
    )
  }

  if (m) {
    const at = (s: Sample | null) => (s ? `${mib(s.rss)} (t=${Number.isNaN(s.t) ? 'before' : `${s.t.toFixed(0)} s`})` : '–')
    lines.push(`RSS MiB:    first ${at(m.first)}, after warm-up ${at(m.after_warmup)}, max ${mib(m.max_rss)}, last ${at(m.last)}`)
    lines.push(
      `heap MiB:   stats line (garbage included) first ${mib(m.first?.heap ?? Number.NaN)}, max ${mib(m.max_heap)}, last ${mib(m.last?.heap ?? Number.NaN)}; ` +
        `live (after a full GC) first ${mib(m.first?.liveHeap ?? Number.NaN)}, after warm-up ${mib(m.after_warmup?.liveHeap ?? Number.NaN)}, last ${mib(m.last?.liveHeap ?? Number.NaN)}`,
    )
    lines.push(
      `growth:     medians of the first quarter after warm-up (t=${m.first_quarter.from_s}-${m.first_quarter.to_s} s, ${m.first_quarter.samples} samples) → ` +
        `the last quarter (t=${m.last_quarter.from_s}-${o.duration} s and the sample after, ${m.last_quarter.samples} samples): ` +
        `RSS ${mib(m.first_quarter.rss)} → ${mib(m.last_quarter.rss)} = ${signed(m.rss_growth)} MiB (allowed +${mib(m.rss_allowed)}: ${TOLERANCE.rss.mib} MiB or ${TOLERANCE.rss.fraction * 100} %); ` +
        `live heap ${mib(m.first_quarter.live_heap)} → ${mib(m.last_quarter.live_heap)} = ${signed(m.live_heap_growth)} MiB (allowed +${mib(m.live_heap_allowed)}: ${TOLERANCE.liveHeap.mib} MiB or ${TOLERANCE.liveHeap.fraction * 100} %)`,
    )
  }

  if (r.loop_p99_ms) {
    lines.push(
      `event loop: p99 per ${o.interval} s interval while publishing: max ${r.loop_p99_ms.max.toFixed(1)} ms, median ${r.loop_p99_ms.median.toFixed(1)} ms ` +
        `(the delay beyond the server's 10 ms sampling period); ` +
        `the probe's full GC after each stats line took median ${median(r.samples.map((s) => s.gcMs)).toFixed(1)} ms, max ${Math.max(...r.samples.map((s) => s.gcMs).filter(Number.isFinite)).toFixed(1)} ms`,
    )
  }

  if (r.server) {
    lines.push(
      `server:     slow subscribers ${r.server.slow}, dropped ${r.server.dropped}; exit on SIGTERM ${r.server.exit}` +
        (Number.isFinite(r.server.stop_ms) ? ` in ${r.server.stop_ms} ms` : '') +
        (r.server.warnings.length ? `; warnings:\n  ${r.server.warnings.slice(0, 10).join('\n  ')}` : ''),
    )
  }

  lines.push(r.verdict.pass ? 'verdict:    PASS: no loss, no growth' : `verdict:    FAIL: ${r.verdict.reasons.join('; ')}`)
  return lines.join('\n') + '\n'
}

async function main(): Promise<void> {
  let options: Options
  try {
    options = parseOptions(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`soak: ${(error as Error).message}\n\n${HELP}`)
    process.exit(2)
  }

  let result: Result
  try {
    result = await soak(options)
  } catch (error) {
    const partial = (error as {partial?: Result}).partial
    process.stderr.write(`soak: ${(error as Error).message}\n`)
    if (!partial) {
      await stopAll(1000)
      process.exit(2)
    }

    result = partial
    result.verdict.reasons.unshift((error as Error).message.split('\n')[0]!)
    result.verdict.pass = false
  }

  process.stdout.write(summary(result))
  if (options.json) process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(result.verdict.pass ? 0 : 1)
}

void main()
