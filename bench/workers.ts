/**
 * `npm run bench:workers`: `msgbus serve --workers 1` against `--workers 2`,
 * side by side, at saturation. A script that prints figures, not a test.
 *
 * Each round starts the server in its own process (with 2 workers: the
 * primary and its two workers), `msgbus test-sub` processes holding the
 * subscriptions, and `msgbus test-pub` publishing flat out (rate 0, 16
 * publishes in flight on each of 8 connections); the two configurations
 * alternate, round after round, so that the machine's changing load falls on
 * both alike. For each round: deliveries/s, the server's CPU per delivery
 * (every server process's CPU from /proc/<pid>/stat, the primary included),
 * the primary's share, and the load generator's CPU (test-sub and test-pub),
 * which competes for the same cores. Then the medians, their ratios, and a
 * projection for 8 and 16 cores from the per-worker figures, its
 * assumptions stated.
 *
 *   npm run bench:workers
 *   npm run bench:workers -- --rounds 5 --subs 1000 --duration 10
 */
import {readFileSync} from 'node:fs'
import {cpus} from 'node:os'
import {parseArgs} from 'node:util'
import type {TestPubReport, TestSubReport} from '../src/lib/load/report.js'
import {log, prepareCli, runCli, jsonOf, startTestSub, stop, stopAll, type Cli, type SubProcess} from '../tools/processes.js'
import {childrenOf, cpuSeconds, endedChildrenCpuSeconds} from '../tools/proc.js'
import {median} from '../tools/figures.js'
import {until} from '../tools/wait.js'
import {exitOnHelp, numberOption} from './args.js'

const HELP = `usage: npm run bench:workers -- [options]

  --rounds N        rounds of each configuration, alternating (default 3)
  --subs N          subscribers (default 200), held by --sub-processes test-sub processes (default 2)
  --connections N   test-pub connections (default 8)
  --pipeline N      publishes in flight on each (default 16): enough that the round trips
                    through the primary do not bound the rate
  --duration S      seconds of measured publishing per round (default 6), after 2 s of warm-up
  --size BYTES      body size (default 64)
  --no-build        use dist/ as it is
`

const {values} = parseArgs({
  options: {
    rounds: {type: 'string'},
    subs: {type: 'string'},
    'sub-processes': {type: 'string'},
    connections: {type: 'string'},
    pipeline: {type: 'string'},
    duration: {type: 'string'},
    size: {type: 'string'},
    'no-build': {type: 'boolean'},
    help: {type: 'boolean', short: 'h'},
  },
  strict: true,
})
exitOnHelp(values.help, HELP)
const rounds = numberOption(values.rounds, 'rounds', 3, 1)
const subsCount = numberOption(values.subs, 'subs', 200, 1)
const subProcesses = numberOption(values['sub-processes'], 'sub-processes', 2, 1)
const connections = numberOption(values.connections, 'connections', 8, 1)
const pipeline = numberOption(values.pipeline, 'pipeline', 16, 1)
const duration = numberOption(values.duration, 'duration', 6, 1)
const size = numberOption(values.size, 'size', 64, 1)
const WARMUP_S = 2
/** The publish-heavy rounds: one subscriber on each worker, about. */
const FEW_SUBSCRIBERS = 2
const CONFIGS = [1, 2]

interface Round {
  workers: number
  messagesPerSecond: number
  deliveriesPerSecond: number
  /** All server processes, µs of CPU per delivery. */
  serverUsPerDelivery: number
  /** The primary's CPU per published message (µs), workers 2 only. */
  primaryUsPerMessage: number
  /** The workers' CPU per delivery (µs): the per-worker figure the projection uses. */
  workerUsPerDelivery: number
  /** Cores the server kept busy over the window. */
  serverCores: number
  /** Cores the load generator (test-sub + test-pub) kept busy over the window. */
  loadCores: number
  lost: number
}

const cpuOf = (pids: number[]): number =>
  pids.reduce((sum, pid) => {
    try {
      return sum + cpuSeconds(pid)
    } catch {
      return Number.NaN
    }
  }, 0)

async function startServer(runJs: string, workers: number): Promise<{cli: Cli; url: string; pids: number[]}> {
  const cli = runCli(runJs, `msgbus serve --workers ${workers}`, ['serve', '--port', '0', '--address', '127.0.0.1', '--workers', String(workers)], (duration + 120) * 1000)
  let port = 0
  let ready = false
  cli.onLine = (line) => {
    const listening = / listen HTTP on [\d.]+:(\d+)/.exec(line)
    if (listening) port = Number(listening[1])
    if (workers === 1 ? listening : / listen \d+ workers serving/.test(line)) ready = true
  }

  await Promise.race([
    until(() => ready && port > 0, () => `the server to listen:\n${cli.lines.join('\n')}`, 30_000),
    cli.exit.then((code) => {
      if (!ready) throw new Error(`the server exited (${code}):\n${cli.lines.join('\n')}`)
    }),
  ])
  return {cli, url: `http://127.0.0.1:${port}`, pids: [cli.pid, ...childrenOf(cli.pid)]}
}

function pubArgs(url: string, seconds: number): string[] {
  return ['test-pub', '--url', url, '-c', 'bench', '-r', '0', '-d', String(seconds), '--size', String(size), '--connections', String(connections), '--pipeline', String(pipeline), '-t', 'application/octet-stream', '--json']
}

async function publish(runJs: string, url: string, seconds: number): Promise<TestPubReport> {
  const cli = runCli(runJs, 'test-pub', pubArgs(url, seconds), (seconds + 40) * 1000)
  const code = await cli.exit
  if (code !== 0) throw new Error(`test-pub exited (${code}):\n${cli.lines.slice(-5).join('\n')}`)
  return jsonOf<TestPubReport>(cli)
}

async function round(runJs: string, workers: number, subsCount: number): Promise<Round> {
  const server = await startServer(runJs, workers)
  const subs: SubProcess[] = []
  try {
    for (let i = 0; i < Math.min(subProcesses, subsCount); i++) {
      const processes = Math.min(subProcesses, subsCount)
      const requested = Math.floor(subsCount / processes) + (i < subsCount % processes ? 1 : 0)
      subs.push(startTestSub(runJs, server.url, 'bench', requested, `test-sub ${i + 1}`, duration + WARMUP_S + 60))
    }

    await until(() => subs.every((p) => p.connected + p.failed >= p.requested), 'every subscription live', {timeoutMs: 60_000, everyMs: 100})
    // Warm-up: the hot paths compiled in every process before the window.
    await publish(runJs, server.url, WARMUP_S)
    const primary = server.cli.pid
    const workerPids = workers === 1 ? [primary] : childrenOf(primary)
    const subPids = subs.map((p) => p.cli.pid)
    const before = {primary: cpuOf([primary]), workers: workers === 1 ? 0 : cpuOf(workerPids), subs: cpuOf(subPids), children: endedChildrenCpuSeconds(), at: performance.now()}
    const report = await publish(runJs, server.url, duration)
    const seconds = (performance.now() - before.at) / 1000
    const pubCpu = endedChildrenCpuSeconds() - before.children
    const primaryCpu = cpuOf([primary]) - before.primary
    const workersCpu = workers === 1 ? primaryCpu : cpuOf(workerPids) - before.workers
    const subCpu = cpuOf(subPids) - before.subs
    const serverCpu = workers === 1 ? primaryCpu : primaryCpu + workersCpu
    const deliveries = report.published * subsCount
    await Promise.all(subs.map((p) => stop(p.cli.child, 10_000)))
    const subReports = subs.map((p) => jsonOf<TestSubReport>(p.cli))
    return {
      workers,
      messagesPerSecond: report.published / report.duration_s,
      deliveriesPerSecond: deliveries / report.duration_s,
      serverUsPerDelivery: (serverCpu / deliveries) * 1e6,
      primaryUsPerMessage: workers === 1 ? Number.NaN : (primaryCpu / report.published) * 1e6,
      workerUsPerDelivery: (workersCpu / deliveries) * 1e6,
      serverCores: serverCpu / seconds,
      loadCores: (subCpu + pubCpu) / seconds,
      lost: subReports.reduce((sum, each) => sum + each.lost, 0),
    }
  } finally {
    await Promise.all(subs.map((p) => stop(p.cli.child, 5000)))
    await stop(server.cli.child, 10_000)
  }
}

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '-')
const thousands = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '-')

async function main(): Promise<void> {
  const runJs = prepareCli(!values['no-build'])
  // The machine may be shared: its load says how much the figures are worth.
  const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  log(`load average before: ${load()}`)
  log(`${cpus().length} cores; ${subsCount} subscribers in ${subProcesses} test-sub processes, test-pub flat out on ${connections} connections × ${pipeline} in flight, ${size}-byte bodies, ${duration} s per round after ${WARMUP_S} s of warm-up, ${rounds} rounds each, alternating`)
  const results: Round[] = []
  for (let i = 0; i < rounds; i++) {
    for (const workers of i % 2 === 0 ? CONFIGS : [...CONFIGS].reverse()) {
      const result = await round(runJs, workers, subsCount)
      results.push(result)
      log(
        `round ${i + 1}, --workers ${workers}: ${thousands(result.deliveriesPerSecond)} deliveries/s, server ${fixed(result.serverUsPerDelivery, 2)} µs/delivery ` +
          `(${fixed(result.serverCores, 2)} cores), load generator ${fixed(result.loadCores, 2)} cores, lost ${result.lost}`,
      )
    }
  }

  // The primary's own ceiling: few subscribers, so the messages, not the deliveries, are what the server is busy with.
  const heavy: Round[] = []
  for (let i = 0; i < rounds; i++) {
    for (const workers of i % 2 === 0 ? CONFIGS : [...CONFIGS].reverse()) {
      const result = await round(runJs, workers, FEW_SUBSCRIBERS)
      heavy.push(result)
      log(`round ${i + 1}, --workers ${workers}, ${FEW_SUBSCRIBERS} subscribers: ${thousands(result.messagesPerSecond)} msg/s, primary ${fixed(result.primaryUsPerMessage, 1)} µs/message, server ${fixed(result.serverCores, 2)} cores`)
    }
  }

  const of = (workers: number) => results.filter((result) => result.workers === workers)
  const medians = CONFIGS.map((workers) => {
    const list = of(workers)
    const pick = (read: (result: Round) => number) => median(list.map(read))
    return {
      workers,
      deliveriesPerSecond: pick((r) => r.deliveriesPerSecond),
      serverUsPerDelivery: pick((r) => r.serverUsPerDelivery),
      workerUsPerDelivery: pick((r) => r.workerUsPerDelivery),
      primaryUsPerMessage: pick((r) => r.primaryUsPerMessage),
      serverCores: pick((r) => r.serverCores),
      loadCores: pick((r) => r.loadCores),
      lost: list.reduce((sum, r) => sum + r.lost, 0),
    }
  })
  const [one, two] = medians
  log(`load average after: ${load()}`)
  console.log('')
  console.log(`medians of ${rounds} rounds           --workers 1   --workers 2   ratio 2/1`)
  const row = (label: string, a: string, b: string, ratio: string) => console.log(`${label.padEnd(32)} ${a.padStart(12)} ${b.padStart(13)} ${ratio.padStart(11)}`)
  row('deliveries/s', thousands(one.deliveriesPerSecond), thousands(two.deliveriesPerSecond), fixed(two.deliveriesPerSecond / one.deliveriesPerSecond, 2))
  row('server CPU µs/delivery (all)', fixed(one.serverUsPerDelivery, 2), fixed(two.serverUsPerDelivery, 2), fixed(two.serverUsPerDelivery / one.serverUsPerDelivery, 2))
  row('  of which workers µs/delivery', fixed(one.workerUsPerDelivery, 2), fixed(two.workerUsPerDelivery, 2), '')
  row('  primary µs/message', '-', fixed(two.primaryUsPerMessage, 1), '')
  row('server cores busy', fixed(one.serverCores, 2), fixed(two.serverCores, 2), '')
  row('load generator cores busy', fixed(one.loadCores, 2), fixed(two.loadCores, 2), '')
  row('messages lost (all rounds)', String(one.lost), String(two.lost), '')
  const heavyOf = (workers: number) => heavy.filter((result) => result.workers === workers)
  const heavyOne = median(heavyOf(1).map((r) => r.messagesPerSecond))
  const heavyTwo = median(heavyOf(2).map((r) => r.messagesPerSecond))
  const heavyPrimary = median(heavyOf(2).map((r) => r.primaryUsPerMessage))
  row(`msg/s, ${FEW_SUBSCRIBERS} subscribers`, thousands(heavyOne), thousands(heavyTwo), fixed(heavyTwo / heavyOne, 2))
  row(`  primary µs/message there`, '-', fixed(heavyPrimary, 1), '')

  // Projection: a worker that has a core to itself delivers 1e6 / (its µs per delivery) a second; the primary
  // takes its µs per published message, from the same cores.
  const perWorker = 1e6 / two.workerUsPerDelivery
  // Per message the primary reads one append and one count from each worker and writes a commit to each: its cost at the
  // message rate of the publish-heavy rounds, where batches carry several messages, is the one that bounds the cluster.
  const primaryUs = Math.min(heavyPrimary, two.primaryUsPerMessage)
  const primaryMessages = 1e6 / primaryUs
  console.log('')
  console.log('projection (from the --workers 2 figures above):')
  console.log(`  assumptions: the load generator on other machines; one worker per core, less one core shared by the primary and the kernel's`)
  console.log(`  network work outside the workers' own CPU; CPU per delivery stays what it was here (${fixed(two.workerUsPerDelivery, 2)} µs: no contention between cores,`)
  console.log(`  which the kernel's shared socket structures and memory bandwidth will not quite give); the primary's cost per message`)
  console.log(`  (${fixed(primaryUs, 1)} µs with 2 workers, the lower of the two kinds of round) grows in proportion to the workers it sends to;`)
  console.log(`  the ${subsCount} subscribers spread evenly.`)
  for (const cores of [8, 16]) {
    const workers = cores - 1
    const byWorkers = workers * perWorker
    const messagesCap = primaryMessages * (2 / workers) * subsCount
    console.log(
      `  ${String(cores).padStart(2)} cores, --workers ${workers}: ${thousands(byWorkers)} deliveries/s by the workers' CPU ` +
        `(${thousands(perWorker)} each); the primary would bound it at ${thousands(messagesCap)} deliveries/s ` +
        `(${thousands(primaryMessages * (2 / workers))} msg/s to ${workers} workers × ${subsCount} subscribers)`,
    )
  }
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error))
    process.exitCode = 1
  })
  .finally(() => stopAll())
