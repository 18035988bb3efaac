/**
 * `npm run bench`: the benchmark suite of issue 4. A script that prints
 * figures, not a test.
 *
 * Each scenario starts `msgbus serve` in its own process and drives it with
 * the project's own load tools, each in its own process too: one or more
 * `msgbus test-sub` holding the subscriptions (and measuring loss and
 * latency), then `msgbus test-pub` publishing. It prints one table: delivered
 * / expected, deliveries/s, latency p50/p99, the server's CPU time over the
 * measured window (from /proc) and per delivery, its RSS, and the tools' own
 * CPU time, with each scenario's target beside its figures.
 *
 *   npm run bench                          # all eight scenarios (about 3 minutes)
 *   npm run bench -- --scenarios 1,3       # a subset
 *   npm run bench -- --duration 5          # shorter publishing runs
 *   npm run bench -- --scenarios 1 --profile   # + the hottest functions of the server and the tools
 *   npm run bench -- --peer nchan --scenarios 1,3,2   # side by side with nginx+nchan (bench/peer.ts, bench/nchan.ts)
 *
 * Everything runs on loopback, is bounded in time, and stops its children on exit.
 */
import {parseArgs} from 'node:util'
import {exitOnHelp, numberOption, UsageError} from './args.js'
import {mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {cpus, tmpdir} from 'node:os'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import type {TestPubReport, TestSubReport} from '../src/lib/load/report.js'
import {log, prepareCli, runCli, jsonOf, startTestSub, stop, stopAll, type Cli, type SubProcess} from '../tools/processes.js'
import {cpuSeconds, cpuTimes, endedChildrenCpuSeconds, establishedOn, machineTimes, statusBytes} from '../tools/proc.js'
import {sleep, until} from '../tools/wait.js'
import {fixed, grouped} from '../tools/figures.js'
import {formatSummary, summarize} from './profile.js'
import {ensureNchan, startNchan, type BenchServer} from './nchan.js'
import {peerArgs, peerTable, runRounds, type PeerFigures, type ServerKind} from './peer.js'

const cores = cpus().length
const CHANNEL = 'bench'

// ---------------------------------------------------------------- scenarios

interface Scenario {
  id: number
  name: string
  subs: number
  /** Messages per second; 0: as fast as the server answers, one publish in flight per connection. */
  rate: number
  /** Seconds of publishing; for the idle scenario, how long the connections are held before RSS is read. */
  duration: number
  /** Body bytes (test-pub --size). */
  size: number
  pubConnections: number
  /** Publishes in flight per publisher connection (test-pub --pipeline). */
  pipeline: number
  subProcesses: number
  /** The subscribers' stream: multipart (default) or SSE. */
  format?: 'sse'
  /** No publishing: the subscribers are only held (scenario 6). */
  idle: boolean
}

const SCENARIOS: Scenario[] = [
  {id: 1, name: '1k × 100/s', subs: 1000, rate: 100, duration: 20, size: 64, pubConnections: 1, pipeline: 1, subProcesses: 1, idle: false},
  {id: 2, name: '10k × 10/s', subs: 10_000, rate: 10, duration: 20, size: 64, pubConnections: 1, pipeline: 1, subProcesses: 2, idle: false},
  // At rate 0 one test-sub process falls seconds behind the server (see bench/README.md); two keep up, nearly.
  {id: 3, name: 'saturation', subs: 100, rate: 0, duration: 10, size: 64, pubConnections: 1, pipeline: 1, subProcesses: 2, idle: false},
  {id: 4, name: '16 KiB', subs: 100, rate: 0, duration: 10, size: 16_384, pubConnections: 1, pipeline: 1, subProcesses: 2, idle: false},
  {id: 5, name: 'publish only', subs: 1, rate: 0, duration: 10, size: 64, pubConnections: 8, pipeline: 1, subProcesses: 1, idle: false},
  {id: 6, name: '15k idle', subs: 15_000, rate: 0, duration: 3, size: 64, pubConnections: 1, pipeline: 1, subProcesses: 3, idle: true},
  // Several publishers (issue 17): where publishing saturates when it is not one request at a time. Few subscribers,
  // so the fan-out and test-sub are not what stops it; --pub-connections and --pipeline move the point.
  {id: 7, name: '8 publishers', subs: 10, rate: 0, duration: 10, size: 64, pubConnections: 8, pipeline: 4, subProcesses: 1, idle: false},
  {id: 8, name: 'SSE 1k × 100/s', subs: 1000, rate: 100, duration: 20, size: 64, pubConnections: 1, pipeline: 1, subProcesses: 1, idle: false, format: 'sse'},
]

const HELP = `usage: npm run bench -- [options]

Scenarios (64-byte bodies unless said):
  1  1,000 subscribers × 100 msg/s for 20 s      target ≤ 7.5 µs server CPU/delivery, p99 ≤ 10 ms
  2  10,000 subscribers × 10 msg/s, 20 s          target ≤ 8 µs/delivery, p99 ≤ 80 ms
  3  100 subscribers, rate 0 (one publish in flight), 10 s: saturation deliveries/s   target ≥ 210,000/s
  4  100 subscribers × 16 KiB bodies, rate 0, 10 s: MB/s
  5  publish only: 1 subscriber, 8 publisher connections, rate 0, 10 s: publishes/s
  6  15,000 idle subscribers: server RSS per connection   target ≤ 8 KiB
  7  10 subscribers, 8 publisher connections × 4 in flight, rate 0, 10 s: msgs/s and deliveries/s
  8  as 1, the subscribers on SSE streams (msgbus ?format=sse; nchan Accept: text/event-stream)
  Every scenario: no loss.

Options:
  --scenarios LIST   comma-separated scenario numbers, e.g. 1,3 (default: all)
  --duration S       seconds of publishing in scenarios 1-5 (whole seconds)
  --warmup S         before the measured subscribers connect, S seconds of flat-out publishing
                     to 100 subscribers of another channel, so the server's code is compiled
                     (0: none; default 2)
  --sub-processes N  test-sub processes per scenario, the subscribers split evenly
                     (default: 1; 2 for scenarios 2, 3 and 4; 3 for scenario 6)
  --server-arg ARG   extra argument for \`msgbus serve\` (repeatable), e.g. --server-arg=--slow-policy=drop
  --quiet-wait S     before each scenario, wait up to S s for the machine to be idle (other
                     processes under 0.25 cores), so their load does not disturb it (default 5)
  --peer nchan       run each scenario against msgbus and nginx+nchan (bench/nchan/nginx.conf:
                     one worker, multipart/mixed or EventSource subscribers, no message buffer)
                     in alternating rounds, and print msgbus/nchan ratios (see bench/README.md);
                     installs nginx-light and libnginx-mod-nchan with apt-get when missing (as root)
  --rounds N         with --peer: rounds per scenario, each running both servers, the order
                     turned every round (default 2)
  --no-install       with --peer: never apt-get install; stop if nginx+nchan is missing
  --pub-connections N  publisher connections in every scenario that publishes (default: the scenario's)
  --pipeline N       publishes in flight per publisher connection (default: the scenario's)
  --profile          run the server, test-sub and test-pub under --cpu-prof and print their
                     hottest functions (the measured ones; not the warm-up's)
  --no-build         use dist/ as it is instead of building it first (npm run build)
  --json             also print the results as JSON
`

interface Options {
  scenarios: Scenario[]
  warmup: number
  quietWait: number
  serverArgs: string[]
  profile: boolean
  build: boolean
  json: boolean
  peer?: 'nchan'
  rounds: number
  install: boolean
}

function parseOptions(): Options {
  const {values} = parseArgs({
    options: {
      scenarios: {type: 'string'},
      duration: {type: 'string'},
      warmup: {type: 'string'},
      'sub-processes': {type: 'string'},
      'server-arg': {type: 'string', multiple: true},
      'quiet-wait': {type: 'string'},
      peer: {type: 'string'},
      rounds: {type: 'string'},
      'no-install': {type: 'boolean'},
      'pub-connections': {type: 'string'},
      pipeline: {type: 'string'},
      profile: {type: 'boolean'},
      'no-build': {type: 'boolean'},
      json: {type: 'boolean'},
      help: {type: 'boolean', short: 'h'},
    },
    strict: true,
  })
  exitOnHelp(values.help, HELP)
  let scenarios = SCENARIOS
  if (values.scenarios !== undefined && values.scenarios !== 'all') {
    const ids = values.scenarios.split(',').map((id) => id.trim()).filter(Boolean)
    scenarios = ids.map((id) => {
      const scenario = SCENARIOS.find((s) => String(s.id) === id)
      if (!scenario) throw new Error(`--scenarios: no scenario ${JSON.stringify(id)} (known: 1 to ${SCENARIOS.length})`)
      return scenario
    })
  }

  const duration = values.duration === undefined ? undefined : numberOption(values.duration, 'duration', 0, 1)
  const subProcesses = values['sub-processes'] === undefined ? undefined : numberOption(values['sub-processes'], 'sub-processes', 0, 1)
  const pubConnections = values['pub-connections'] === undefined ? undefined : numberOption(values['pub-connections'], 'pub-connections', 0, 1)
  const pipeline = values.pipeline === undefined ? undefined : numberOption(values.pipeline, 'pipeline', 0, 1)
  if (values.peer !== undefined && values.peer !== 'nchan') throw new UsageError(`--peer: ${JSON.stringify(values.peer)} is not one the bench knows (nchan)`)
  if (values.peer && values.profile) throw new UsageError('--profile profiles msgbus alone: run it without --peer')
  scenarios = scenarios.map((s) => ({
    ...s,
    pubConnections: pubConnections ?? s.pubConnections,
    pipeline: pipeline ?? s.pipeline,
    duration: duration !== undefined && !s.idle ? duration : s.duration,
    subProcesses: Math.min(subProcesses ?? s.subProcesses, s.subs),
  }))
  return {
    scenarios,
    warmup: numberOption(values.warmup, 'warmup', 2, 0),
    quietWait: numberOption(values['quiet-wait'], 'quiet-wait', 5, 0, false),
    serverArgs: values['server-arg'] ?? [],
    profile: values.profile ?? false,
    build: !values['no-build'],
    json: values.json ?? false,
    peer: values.peer as 'nchan' | undefined,
    rounds: numberOption(values.rounds, 'rounds', 2, 1),
    install: !values['no-install'],
  }
}

// ---------------------------------------------------------------- results

interface Latency {
  p50: number
  p90: number
  p99: number
  max: number
}

interface Outcome {
  scenario: Scenario
  server: ServerKind
  error?: string
  /** Seconds test-pub published (its duration_s); for the idle scenario, the time the connections were held. */
  windowSeconds: number
  published: number
  publishErrors: number
  /** Messages × subscribers. */
  expected: number
  /** What the test-sub processes received, all together. */
  delivered: number
  bytes: number
  /** test-sub's own counts, summed over its processes. */
  gaps: number
  duplicates: number
  outOfOrder: number
  reconnects: number
  connected: number
  failed: number
  /** The highest of each percentile over the test-sub processes (their histograms cannot be merged from the JSON). */
  latency: Latency
  p99s: number[]
  subErrors: string[]
  /**
   * How long after test-pub ended the subscribers still received (the time of
   * their last progress line that counted messages: the last message came in
   * the second before it). Over a second or so: they had fallen behind.
   */
  drainSeconds: number
  /** Seconds from starting the test-sub processes until all their subscriptions were live. */
  connectSeconds: number
  /** The server's side of the connections in ESTABLISHED once the subscribers were live (from /proc/net/tcp). */
  established: number
  serverCpu: number
  serverUser: number
  serverRss: number
  serverHwm: number
  /** Idle scenario: the server's RSS before the subscribers connected. */
  rssBefore: number
  /** test-sub's cpu_s, summed over its processes (each one's whole life, connecting included). */
  subCpu: number
  /** The test-sub processes' CPU time over the measured window (from /proc). */
  subCpuWindow: number
  /** test-pub's CPU time, its whole life (from this process's cutime and cstime as it ended); NaN if unknown. */
  pubCpu: number
  wallSeconds: number
  machineBusy: number
  machineIrq: number
  shutdownMs: number
  slowLines: number
  /** With --profile: each process's hottest functions. */
  profiles?: Array<{label: string; summary: string}>
}

function emptyOutcome(scenario: Scenario, server: ServerKind): Outcome {
  return {
    scenario,
    server,
    windowSeconds: Number.NaN,
    published: 0,
    publishErrors: 0,
    expected: 0,
    delivered: 0,
    bytes: 0,
    gaps: 0,
    duplicates: 0,
    outOfOrder: 0,
    reconnects: 0,
    connected: 0,
    failed: 0,
    latency: {p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, max: Number.NaN},
    p99s: [],
    subErrors: [],
    connectSeconds: Number.NaN,
    drainSeconds: Number.NaN,
    established: Number.NaN,
    serverCpu: Number.NaN,
    serverUser: Number.NaN,
    serverRss: Number.NaN,
    serverHwm: Number.NaN,
    rssBefore: Number.NaN,
    subCpu: Number.NaN,
    subCpuWindow: Number.NaN,
    pubCpu: Number.NaN,
    wallSeconds: Number.NaN,
    machineBusy: Number.NaN,
    machineIrq: Number.NaN,
    shutdownMs: Number.NaN,
    slowLines: 0,
  }
}

// ---------------------------------------------------------------- the server

/** The server's start-up line `writer`, as last said in the bench's log. */
let writerSaid: string | undefined
/** How test-sub read (its report's `reads`), said once a run as the writer is. */
let readsSaid: string | undefined

/** `msgbus serve --port 0`, its port read from its `listen HTTP on ...` line. */
async function startServer(runJs: string, lifetimeMs: number, serverArgs: string[], nodeArgs: string[]): Promise<BenchServer & {cli: Cli}> {
  const cli = runCli(runJs, 'msgbus serve', ['serve', '--port', '0', '--address', '127.0.0.1', ...serverArgs], lifetimeMs, nodeArgs)
  const server = {
    kind: 'msgbus' as const,
    cli,
    pid: cli.pid,
    port: 0,
    url: '',
    slowLines: 0,
    lines: () => cli.lines.slice(-10).join('\n'),
    exit: cli.exit,
    stop: (graceMs: number) => stop(cli.child, graceMs),
  }
  cli.onLine = (line) => {
    if (/ slow /.test(line)) server.slowLines++
    const writer = / writer (.*)/.exec(line)?.[1]
    // Said once a run: how the figures were made (the native sender or Node's streams).
    if (writer !== undefined && writer !== writerSaid) log(`the server writes to subscribers through: ${(writerSaid = writer)}`)
    const listening = / listen HTTP on ([\d.]+):(\d+)/.exec(line)
    if (listening && server.port === 0) {
      server.port = Number(listening[2])
      server.url = `http://127.0.0.1:${server.port}`
    }
  }

  await Promise.race([
    until(() => server.port > 0, () => `the server to say where it listens:\n${cli.lines.join('\n')}`, 20_000),
    cli.exit.then((code) => {
      if (server.port === 0) throw new Error(`the server exited (${code}) before listening:\n${cli.lines.join('\n')}`)
    }),
  ])
  return server
}

// ---------------------------------------------------------------- the load tools

interface Subscribers {
  procs: SubProcess[]
  requested: number
  started: number
}

/**
 * Starts `processes` test-sub processes holding `count` subscriptions to
 * `channel` between them, reporting every second on stderr, which tells when
 * their streams are live and when they have stopped receiving.
 */
function startSubscribers(runJs: string, server: BenchServer, channel: string, count: number, processes: number, lifetimeSeconds: number, nodeArgs: string[] = [], extraArgs: string[] = []): Subscribers {
  const subs: Subscribers = {procs: [], requested: count, started: performance.now()}
  for (let i = 0; i < processes; i++) {
    const requested = Math.floor(count / processes) + (i < count % processes ? 1 : 0)
    const label = processes > 1 ? `test-sub ${i + 1}/${processes}` : 'test-sub'
    subs.procs.push(startTestSub(runJs, server.url, channel, requested, label, lifetimeSeconds, {nodeArgs, extraArgs}))
  }

  return subs
}

/** Waits until every subscription is live (or failed), by test-sub's progress lines; without them, by the server's established connections. */
async function subscribersLive(subs: Subscribers, server: BenchServer, timeoutMs: number): Promise<void> {
  const live = () => {
    if (subs.procs.every((p) => p.lastLineAt > 0)) return subs.procs.every((p) => p.connected + p.failed >= p.requested)
    // No progress lines (their format changed?): count the server's side of the connections.
    return performance.now() - subs.started > 5000 && establishedOn(server.port) >= subs.requested
  }

  await Promise.race([
    until(live, () => `every subscription live (${subs.procs.reduce((n, p) => n + p.connected, 0)} of ${subs.requested} are)`, {timeoutMs, everyMs: 100}),
    ...subs.procs.map((p) =>
      p.cli.exit.then((code) => {
        throw new Error(`${p.cli.label} exited (${code}) before its subscriptions were live:\n${p.cli.lines.slice(-5).join('\n')}`)
      }),
    ),
  ])
}

/** Stops the test-sub processes (SIGTERM: each prints its JSON document and exits) and reads their documents. */
async function stopSubscribers(subs: Subscribers): Promise<TestSubReport[]> {
  await Promise.all(subs.procs.map((p) => stop(p.cli.child, 10_000)))
  return subs.procs.map((p) => jsonOf<TestSubReport>(p.cli))
}

function pubArgs(server: BenchServer, channel: string, scenario: Scenario, seconds: number, extraArgs: string[] = []): string[] {
  return [
    'test-pub',
    '--url',
    server.url,
    '-c',
    channel,
    '-r',
    String(scenario.rate),
    '-d',
    String(seconds),
    '--size',
    String(scenario.size),
    '--connections',
    String(scenario.pubConnections),
    '--pipeline',
    String(scenario.pipeline),
    '-t',
    // msgbus's SSE carries a body that is not text in base64, which would hide a marker at its start.
    scenario.format === 'sse' ? 'text/plain' : 'application/octet-stream',
    '--interval',
    '5',
    '--json',
    ...extraArgs,
  ]
}

/** Runs test-pub to its end (bounded: SIGTERM, then SIGKILL, if it overruns its duration by 30 s). */
async function runPublisher(runJs: string, args: string[], seconds: number, label = 'test-pub', nodeArgs: string[] = []): Promise<{cli: Cli; code: number | NodeJS.Signals}> {
  const cli = runCli(runJs, label, args, (seconds + 40) * 1000, nodeArgs)
  const timer = setTimeout(() => void stop(cli.child, 5000), (seconds + 30) * 1000)
  const code = await cli.exit
  clearTimeout(timer)
  return {cli, code}
}

/**
 * Warm-up: 100 subscribers on another channel and `seconds` of flat-out
 * publishing to them, so that the server's hot paths are compiled before the
 * measured window; then those subscribers leave.
 */
async function warmUp(runJs: string, server: BenchServer, scenario: Scenario, seconds: number): Promise<void> {
  const extra = peerArgs(server.kind, scenario)
  const subs = startSubscribers(runJs, server, 'warmup', 100, 1, seconds + 60, [], extra.sub)
  try {
    await subscribersLive(subs, server, 30_000)
    // 64-byte bodies whatever the scenario's: 100 subscribers keep up with them, so none is disconnected as slow.
    await runPublisher(runJs, pubArgs(server, 'warmup', {...scenario, rate: 0, size: 64, pubConnections: 1, pipeline: 1}, seconds, extra.pub), seconds, 'test-pub (warm-up)')
  } finally {
    await Promise.all(subs.procs.map((p) => stop(p.cli.child, 5000)))
  }
}

// ---------------------------------------------------------------- one scenario

/** The CPU seconds of these processes together (NaN if one has gone). */
const procCpu = (pids: number[]): number => pids.reduce((sum, pid) => sum + safe(() => cpuSeconds(pid)), 0)

function safe(read: () => number): number {
  try {
    return read()
  } catch {
    return Number.NaN
  }
}

async function runScenario(runJs: string, scenario: Scenario, options: Options, kind: ServerKind = 'msgbus'): Promise<Outcome> {
  const outcome = emptyOutcome(scenario, kind)
  const s = scenario
  const what = s.idle
    ? `${s.subs.toLocaleString('en-US')} idle subscribers held ${s.duration} s`
    : `${s.subs.toLocaleString('en-US')} subscribers, ${s.rate > 0 ? `${s.rate} msg/s` : 'rate 0'}, ${s.size}-byte bodies, ` +
      `${s.pubConnections} publisher connection${s.pubConnections > 1 ? 's' : ''}, ${s.duration} s`
  log(`── ${s.id}. ${what} (${s.subProcesses} test-sub process${s.subProcesses > 1 ? 'es' : ''})`)
  const profileDir = options.profile ? mkdtempSync(join(tmpdir(), 'msgbus-bench-prof-')) : undefined
  const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []
  const labels = new Map<number, string>()
  // Bounds: the connections at (pessimistically) 500/s, the warm-up, the run, 90 s to spare.
  const lifetime = s.subs / 500 + options.warmup + s.duration + 90
  const server = kind === 'nchan' ? await startNchan(lifetime * 1000) : await startServer(runJs, lifetime * 1000, options.serverArgs, nodeArgs)
  if (kind === 'msgbus') labels.set(server.pid, 'msgbus serve (its whole life)')
  const extra = peerArgs(kind, s)
  let subs: Subscribers | undefined
  let serverGone = false
  void server.exit.then(() => (serverGone = true))
  try {
    // Not before the idle scenario: its figure is the RSS the subscriptions add to a fresh server.
    if (options.warmup > 0 && !s.idle) await warmUp(runJs, server, s, options.warmup)
    if (s.idle) {
      await sleep(1000)
      outcome.rssBefore = statusBytes(server.pid, 'VmRSS')
    }

    // The subscribers, all live before anything is published.
    const slowBefore = server.slowLines
    const serverBefore = cpuTimes(server.pid)
    subs = startSubscribers(runJs, server, CHANNEL, s.subs, s.subProcesses, lifetime, nodeArgs, extra.sub)
    for (const p of subs.procs) labels.set(p.cli.pid, `${p.cli.label} (its whole life)`)
    await subscribersLive(subs, server, (20 + s.subs / 500) * 1000)
    outcome.connectSeconds = (performance.now() - subs.started) / 1000
    outcome.established = establishedOn(server.port)
    log(`   ${subs.procs.reduce((n, p) => n + p.connected, 0)} subscriptions live in ${outcome.connectSeconds.toFixed(1)} s (the server sees ${outcome.established} connections)`)
    const subPids = subs.procs.map((p) => p.cli.pid)

    if (s.idle) {
      const start = {server: cpuTimes(server.pid), subs: procCpu(subPids), machine: machineTimes(), at: performance.now()}
      await sleep(s.duration * 1000)
      const end = {server: cpuTimes(server.pid), subs: procCpu(subPids), machine: machineTimes(), at: performance.now()}
      outcome.windowSeconds = (end.at - start.at) / 1000
      outcome.wallSeconds = outcome.windowSeconds
      // For this scenario the server's CPU is that of accepting the subscriptions.
      outcome.serverCpu = start.server.user + start.server.system - serverBefore.user - serverBefore.system
      outcome.serverUser = start.server.user - serverBefore.user
      outcome.subCpuWindow = end.subs - start.subs
      outcome.machineBusy = end.machine.busy - start.machine.busy
      outcome.machineIrq = end.machine.irq - start.machine.irq
      outcome.pubCpu = 0
    } else {
      // The measured window: from starting test-pub until the subscribers have received everything.
      const start = {server: cpuTimes(server.pid), subs: procCpu(subPids), machine: machineTimes(), at: performance.now(), children: endedChildrenCpuSeconds()}
      const {cli: pub, code} = await runPublisher(runJs, pubArgs(server, CHANNEL, s, s.duration, extra.pub), s.duration, 'test-pub', nodeArgs)
      labels.set(pub.pid, 'test-pub')
      // Nothing else has ended since test-pub started (the subscribers and the server are running): the growth is test-pub's.
      const pubCpu = endedChildrenCpuSeconds() - start.children
      const pubEnded = performance.now()
      const report = jsonOf<TestPubReport>(pub)
      if (code !== 0 && report.errors === 0) log(`   test-pub exited with ${code}`)
      outcome.pubCpu = subs.procs.some((p) => p.cli.child.exitCode !== null || p.cli.child.signalCode !== null) ? Number.NaN : pubCpu

      // Drained when every test-sub has reported a whole second, begun after test-pub ended, with nothing received.
      const drainLimit = Math.max(10, s.duration)
      await until(
        () => subs!.procs.every((p) => p.lastLineAt > pubEnded + 1050 && p.lastRate === 0),
        'the subscribers to stop receiving after test-pub ended',
        {timeoutMs: drainLimit * 1000, everyMs: 50},
      ).catch((error: Error) => log(`   ${error.message}`))
      // The last progress line that counted messages covers the second before it: the last one came within it.
      outcome.drainSeconds = Math.max(0, (Math.max(...subs.procs.map((p) => p.lastBusyAt)) - pubEnded) / 1000)
      const end = {server: cpuTimes(server.pid), subs: procCpu(subPids), machine: machineTimes(), at: performance.now()}
      outcome.serverCpu = end.server.user + end.server.system - start.server.user - start.server.system
      outcome.serverUser = end.server.user - start.server.user
      outcome.subCpuWindow = end.subs - start.subs
      outcome.wallSeconds = (end.at - start.at) / 1000
      outcome.machineBusy = end.machine.busy - start.machine.busy
      outcome.machineIrq = end.machine.irq - start.machine.irq
      outcome.windowSeconds = report.duration_s
      outcome.published = report.published
      outcome.publishErrors = report.errors
      outcome.expected = report.published * s.subs
      if (report.reasons) log(`   test-pub: ${report.reasons.join('; ')}`)
    }

    outcome.serverRss = statusBytes(server.pid, 'VmRSS')
    outcome.serverHwm = statusBytes(server.pid, 'VmHWM')
    if (serverGone) throw new Error(`the server exited during the run:\n${server.lines()}`)

    outcome.slowLines = server.slowLines - slowBefore
    const reports = await stopSubscribers(subs)
    outcome.delivered = sum(reports, (r) => r.received)
    outcome.bytes = sum(reports, (r) => r.bytes)
    outcome.gaps = sum(reports, (r) => r.lost)
    outcome.duplicates = sum(reports, (r) => r.duplicates)
    outcome.outOfOrder = sum(reports, (r) => r.out_of_order)
    outcome.reconnects = sum(reports, (r) => r.reconnects)
    outcome.connected = sum(reports, (r) => r.connections.connected)
    outcome.failed = sum(reports, (r) => r.connections.failed)
    outcome.subCpu = sum(reports, (r) => r.cpu_s)
    for (const {reads} of reports) if (reads !== undefined && reads !== readsSaid) log(`test-sub reads its subscriptions through: ${(readsSaid = reads)}`)
    outcome.subErrors = reports.flatMap((r) => r.errors ?? [])
    outcome.p99s = reports.map((r) => r.latency_ms.p99)
    const highest = (key: keyof Latency) => Math.max(...reports.map((r) => r.latency_ms[key]))
    outcome.latency = {p50: highest('p50'), p90: highest('p90'), p99: highest('p99'), max: highest('max')}
  } catch (error) {
    outcome.error = (error as Error).message.split('\n')[0]
    log(`   FAILED: ${(error as Error).message}`)
  } finally {
    if (subs) await Promise.all(subs.procs.map((p) => stop(p.cli.child, 3000)))
    outcome.shutdownMs = await server.stop(options.profile ? 30_000 : 5000)
    await stopAll()
  }

  if (profileDir) {
    outcome.profiles = readProfiles(profileDir, labels)
    rmSync(profileDir, {recursive: true, force: true})
  }

  log(`   ${verdict(outcome).figure}; ${verdict(outcome).target}`)
  return outcome
}

/** The profiles node --cpu-prof wrote (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile), summarised, named by process. */
function readProfiles(dir: string, labels: Map<number, string>): Array<{label: string; summary: string}> {
  const found = readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => ({name, pid: Number(name.split('.')[3])}))
    .filter(({pid}) => labels.has(pid))
  const order = [...labels.keys()]
  found.sort((a, b) => order.indexOf(a.pid) - order.indexOf(b.pid))
  const profiles = found.map(({name, pid}) => {
    let summary: string
    try {
      summary = formatSummary(summarize(join(dir, name)), labels.get(pid)!.startsWith('msgbus') ? 25 : 15)
    } catch (error) {
      summary = `  (could not read the profile: ${(error as Error).message})`
    }

    return {label: labels.get(pid)!, summary}
  })
  for (const [pid, label] of labels) if (!found.some((f) => f.pid === pid)) profiles.push({label, summary: '  (wrote no profile)'})
  return profiles
}

function sum<T>(items: T[], of: (item: T) => number): number {
  return items.reduce((total, item) => total + of(item), 0)
}

/** Waits (up to `seconds`) until the machine is nearly idle; says how busy it was. */
async function waitForQuiet(seconds: number): Promise<void> {
  const started = performance.now()
  let busy = 0
  do {
    const before = machineTimes()
    const at = performance.now()
    await sleep(500)
    busy = (machineTimes().busy - before.busy) / ((performance.now() - at) / 1000)
    if (busy < 0.25) return
  } while (performance.now() - started < seconds * 1000)
  log(`   the machine is busy (${busy.toFixed(2)} cores used by other processes): figures will be disturbed`)
}

// ---------------------------------------------------------------- the table

const mark = (ok: boolean): string => (ok ? 'met' : 'MISSED')

/** Loss as the counts show it: fewer deliveries than messages × subscribers, a failed subscription, a reconnect, a duplicate or a refused publish. */
function lossless(o: Outcome): boolean {
  return !o.error && o.delivered === o.expected && o.duplicates === 0 && o.failed === 0 && o.reconnects === 0 && o.publishErrors === 0
}

const perDelivery = (o: Outcome): number => (o.serverCpu * 1e6) / o.delivered

/** Subscribers that were still receiving well after test-pub ended had fallen behind: the rate counts messages parked in socket buffers. */
function behind(o: Outcome): string {
  return o.drainSeconds > 2 ? ` (subscribers ${fixed(o.drainSeconds, 0)} s behind)` : ''
}

/** The scenario's headline figure, and its target. */
function verdict(o: Outcome): {figure: string; target: string; met?: boolean} {
  const s = o.scenario
  if (o.error) return {figure: 'FAILED', target: o.error}
  const noLoss = lossless(o) && o.gaps === 0
  const loss = noLoss ? 'no loss' : 'LOSS'
  switch (s.id) {
    case 1:
    case 2: {
      const [us, p99] = s.id === 1 ? [7.5, 10] : [8, 80]
      const [cpu, latency] = [perDelivery(o) <= us, o.latency.p99 <= p99]
      return {
        figure: `${fixed(perDelivery(o), 2)} µs/delivery, p99 ${fixed(o.latency.p99, 1)} ms`,
        target: `≤ ${us} µs ${mark(cpu)}, p99 ≤ ${p99} ms ${mark(latency)}, no loss ${mark(noLoss)}`,
        met: cpu && latency && noLoss,
      }
    }

    case 3: {
      const rate = o.delivered / o.windowSeconds
      return {figure: `${grouped(rate)} deliveries/s${behind(o)}`, target: `≥ 210,000/s ${mark(rate >= 210_000)}, no loss ${mark(noLoss)}`, met: noLoss && rate >= 210_000}
    }

    case 4:
      return {figure: `${fixed(o.bytes / 1e6 / o.windowSeconds, 0)} MB/s${behind(o)}`, target: `no loss ${mark(noLoss)}`, met: noLoss}
    case 5:
      return {figure: `${grouped(o.published / o.windowSeconds)} publishes/s`, target: `no loss ${mark(noLoss)}`, met: noLoss}
    case 7:
      return {figure: `${grouped(o.published / o.windowSeconds)} msgs/s, ${grouped(o.delivered / o.windowSeconds)} deliveries/s${behind(o)}`, target: `no loss ${mark(noLoss)}`, met: noLoss}
    case 8:
      return {figure: `${fixed(perDelivery(o), 2)} µs/delivery, p99 ${fixed(o.latency.p99, 1)} ms`, target: `no loss ${mark(noLoss)}`, met: noLoss}
    case 6: {
      const kib = (o.serverRss - o.rssBefore) / o.scenario.subs / 1024
      const all = o.failed === 0 && o.reconnects === 0 && o.connected === s.subs
      return {figure: `${fixed(kib, 2)} KiB/connection`, target: `≤ 8 KiB ${mark(kib <= 8)}, all connected ${mark(all)}`, met: kib <= 8 && all}
    }

    default:
      return {figure: '', target: loss}
  }
}

function table(outcomes: Outcome[]): string {
  const header = ['#', 'scenario', 'subs', 'procs', 'msg/s', 'dur s', 'delivered/expected', 'deliveries/s', 'p50 ms', 'p99 ms', 'srv CPU s', 'µs/deliv', 'srv RSS MiB', 'sub CPU s', 'pub CPU s', 'figure', 'target']
  const rows = outcomes.map((o) => {
    const s = o.scenario
    const {figure, target} = verdict(o)
    const rate = s.idle ? 'idle' : s.rate > 0 ? grouped(o.published / o.windowSeconds) : `max ${grouped(o.published / o.windowSeconds)}`
    const traffic = !s.idle && !o.error
    return [
      String(s.id),
      s.name,
      grouped(s.subs),
      String(s.subProcesses),
      o.error ? (s.idle ? 'idle' : s.rate > 0 ? String(s.rate) : 'max') : rate,
      fixed(o.windowSeconds, 1),
      traffic ? `${grouped(o.delivered)}/${grouped(o.expected)}` : '–',
      traffic ? grouped(o.delivered / o.windowSeconds) : '–',
      traffic ? fixed(o.latency.p50, 2) : '–',
      traffic ? fixed(o.latency.p99, 2) : '–',
      fixed(o.serverCpu, 2),
      traffic ? fixed(perDelivery(o), 2) : '–',
      fixed(o.serverRss / 2 ** 20, 1),
      fixed(o.subCpu, 2),
      s.idle ? '–' : fixed(o.pubCpu, 2),
      figure,
      target,
    ]
  })
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)))
  const left = new Set([1, 15, 16])
  const line = (cells: string[]) => cells.map((cell, i) => (left.has(i) ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd()
  return [line(header), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n')
}

/** CPU seconds other processes (not the server, not the tools) used over the window (the idle scenario's server CPU is outside it). */
function othersSeconds(o: Outcome): number {
  return o.machineBusy - o.serverCpu * (o.scenario.idle ? 0 : 1) - o.subCpuWindow - (Number.isFinite(o.pubCpu) ? o.pubCpu : 0)
}

function notes(o: Outcome): string[] {
  const s = o.scenario
  if (o.error) return [`${s.id}. FAILED: ${o.error}`]
  const out: string[] = []
  const pct = (seconds: number) => `${fixed((100 * seconds) / o.wallSeconds, 0)} % of a core`
  if (s.idle) {
    const kib = (o.serverRss - o.rssBefore) / s.subs / 1024
    out.push(
      `${s.id}. ${grouped(o.connected)}/${grouped(s.subs)} subscriptions live in ${fixed(o.connectSeconds, 1)} s (failed ${o.failed}, reconnects ${o.reconnects}); ` +
        `the server saw ${grouped(o.established)} established connections. Server RSS ${fixed(o.rssBefore / 2 ** 20, 1)} MiB before, ` +
        `${fixed(o.serverRss / 2 ** 20, 1)} MiB with them after ${s.duration} s (peak ${fixed(o.serverHwm / 2 ** 20, 1)}): ${fixed(kib, 2)} KiB each; ` +
        `accepting them cost the server ${fixed(o.serverCpu, 2)} s of CPU (${fixed((o.serverCpu * 1e6) / s.subs, 0)} µs each).`,
    )
  } else {
    const missing = o.expected - o.delivered
    out.push(
      `${s.id}. ${grouped(o.published)} messages in ${fixed(o.windowSeconds, 2)} s` +
        (s.rate > 0 ? '' : ` (${grouped(o.published / o.windowSeconds)}/s, one in flight per connection)`) +
        `, ${s.size}-byte bodies, to ${grouped(s.subs)} subscribers in ${s.subProcesses} test-sub process${s.subProcesses > 1 ? 'es' : ''} (live in ${fixed(o.connectSeconds, 1)} s); ` +
        `missing ${grouped(missing)}, publish errors ${o.publishErrors}, duplicates ${o.duplicates}, failed ${o.failed}, reconnects ${o.reconnects}, ` +
        `test-sub lost ${grouped(o.gaps)} (gaps in the sequences) and out of order ${grouped(o.outOfOrder)}; slow-subscriber log lines ${o.slowLines}.`,
    )
    out.push(
      `   latency ms (the highest over the test-sub processes${s.subProcesses > 1 ? `; p99s ${o.p99s.join(', ')}` : ''}): ` +
        `p50 ${fixed(o.latency.p50, 2)}  p90 ${fixed(o.latency.p90, 2)}  p99 ${fixed(o.latency.p99, 2)}  max ${fixed(o.latency.max, 1)}; ` +
        `${fixed(o.bytes / 1e6 / o.windowSeconds, 1)} MB/s of bodies; the subscribers received their last messages ${fixed(o.drainSeconds, 1)} s after test-pub ended (±1 s)` +
        (o.drainSeconds > 2 ? `, so they received ${grouped(o.delivered / (o.windowSeconds + o.drainSeconds))} messages/s` : '') +
        (s.id === 5 ? `; server CPU ${fixed((o.serverCpu * 1e6) / o.published, 1)} µs per publish` : ''),
    )
  }

  out.push(
    `   server: CPU ${fixed(o.serverCpu, 2)} s (user ${fixed(o.serverUser, 2)}, kernel ${fixed(o.serverCpu - o.serverUser, 2)})` +
      (s.idle ? '' : ` = ${pct(o.serverCpu)} over the ${fixed(o.wallSeconds, 1)} s window`) +
      `, RSS ${fixed(o.serverRss / 2 ** 20, 1)} MiB (peak ${fixed(o.serverHwm / 2 ** 20, 1)}), graceful stop ${fixed(o.shutdownMs, 0)} ms. ` +
      `Tools: test-sub ${fixed(o.subCpu, 2)} s (cpu_s, whole life), ${fixed(o.subCpuWindow, 2)} s in the window = ${pct(o.subCpuWindow)}` +
      (s.idle ? '' : `; test-pub ${fixed(o.pubCpu, 2)} s = ${pct(o.pubCpu)}`),
  )
  // On this kernel irq/softirq ticks are charged to the process they interrupt (loopback TCP delivery runs
  // in the sender's softirq), so they are inside the server's and the tools' CPU already.
  const others = othersSeconds(o)
  out.push(
    `   machine over the window: ${fixed(o.machineBusy / o.wallSeconds, 2)} of ${cores} cores busy (irq+softirq ${fixed(o.machineIrq, 2)} s)` +
      (s.idle ? '' : `; other processes about ${fixed(Math.max(0, others), 2)} s`) +
      (!s.idle && others / o.wallSeconds > 0.15 ? ' — the machine was not quiet: latency and CPU figures are disturbed' : ''),
  )
  if (o.subErrors.length > 0) out.push(`   test-sub errors: ${o.subErrors.join('; ')}`)
  return out
}

// ---------------------------------------------------------------- main

/** One run's figures, as the peer comparison reads them. */
function peerFigures(o: Outcome): PeerFigures {
  return {
    error: o.error,
    perDelivery: perDelivery(o),
    deliveriesPerSecond: o.delivered / o.windowSeconds,
    messagesPerSecond: o.published / o.windowSeconds,
    p99: o.latency.p99,
    lossless: lossless(o) && o.gaps === 0,
    kibPerConnection: (o.serverRss - o.rssBefore) / o.scenario.subs / 1024,
    subPerDelivery: (o.subCpuWindow * 1e6) / o.delivered,
    otherCores: Math.max(0, othersSeconds(o)) / o.wallSeconds,
  }
}

/** --peer nchan: each scenario against both servers, in alternating rounds; the ratios. */
async function comparePeer(runJs: string, options: Options): Promise<void> {
  ensureNchan(options.install)
  const started = performance.now()
  const outcomes: Outcome[] = []
  const rows = await runRounds(options.scenarios, options.rounds, async (scenario, kind, round) => {
    await waitForQuiet(options.quietWait)
    log(`round ${round + 1}/${options.rounds}, ${kind}:`)
    const outcome = await runScenario(runJs, scenario as Scenario, options, kind)
    outcomes.push(outcome)
    return peerFigures(outcome)
  })
  let out =
    `\nmsgbus against nginx+nchan (bench/nchan/nginx.conf: one worker), ${cores} cores, node ${process.version}, loopback; ` +
    `${options.rounds} round${options.rounds > 1 ? 's' : ''} per scenario, the servers' order turned each round; ${((performance.now() - started) / 1000).toFixed(0)} s\n` +
    `each figure: the median over the rounds (lowest–highest); ratio: msgbus/nchan of the medians (the rounds' own ratios, lowest–highest); ` +
    `µs/deliv = the server's utime+stime (/proc; nginx's worker) per delivery${options.warmup > 0 ? `; ${options.warmup} s of warm-up on another channel before each run` : ''}\n\n`
  out += peerTable(rows) + '\n'
  process.stdout.write(out)
  if (options.json) process.stdout.write(JSON.stringify(outcomes.map(({profiles: _, ...rest}) => rest), null, 2) + '\n')
  process.exitCode = outcomes.some((outcome) => outcome.error) ? 1 : 0
}

async function main(): Promise<void> {
  const options = parseOptions()
  const runJs = prepareCli(options.build)
  if (options.peer) return comparePeer(runJs, options)
  const started = performance.now()
  const outcomes: Outcome[] = []
  for (const scenario of options.scenarios) {
    await waitForQuiet(options.quietWait)
    outcomes.push(await runScenario(runJs, scenario, options))
  }

  let out =
    `\nmsgbus benchmark: ${cores} cores, node ${process.version}, loopback; \`msgbus serve\`${options.serverArgs.length ? ` ${options.serverArgs.join(' ')}` : ''} ` +
    `driven by \`msgbus test-pub\` and \`msgbus test-sub\`, each in its own process; ${((performance.now() - started) / 1000).toFixed(0)} s\n` +
    `latency = test-pub's send → test-sub's read; server CPU = utime+stime (/proc) from test-pub's start until the subscribers ` +
    `have received everything${options.profile ? ' (UNDER --cpu-prof)' : ''}; p50/p99 = the highest over the test-sub processes; ` +
    `sub CPU = test-sub's cpu_s; pub CPU = test-pub's${options.warmup > 0 ? `; scenarios 1-5 after ${options.warmup} s of warm-up on another channel` : ''}\n\n`
  out += table(outcomes) + '\n\n'
  for (const outcome of outcomes) out += notes(outcome).join('\n') + '\n'
  for (const outcome of outcomes) {
    for (const {label, summary} of outcome.profiles ?? []) out += `\nprofile, scenario ${outcome.scenario.id}, ${label}:\n${summary}\n`
  }
  process.stdout.write(out)
  if (options.json) process.stdout.write(JSON.stringify(outcomes.map(({profiles: _, ...rest}) => rest), null, 2) + '\n')
  process.exitCode = outcomes.some((outcome) => outcome.error) ? 1 : 0
}

main().catch(async (error: unknown) => {
  process.stderr.write(`bench: ${(error as Error)?.message ?? error}\n`)
  await stopAll(1000)
  process.exitCode = 1
})
