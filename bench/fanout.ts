/**
 * `npm run bench`: the fan-out benchmark of issue 2. A script that prints
 * figures, not a test.
 *
 * For each scenario it starts the server in its own process (`node bin/run.js
 * serve` on a free loopback port) and a separate load process (bench/load.ts)
 * holding N raw-socket subscribers and one keep-alive publisher, then prints
 * one table: delivered/expected, deliveries/s, latency p50/p99/max, the
 * server's CPU time over the measured window (from /proc), CPU µs per
 * delivery, the server's RSS, and the load process's own CPU time.
 *
 *   npm run bench                                   # the default scenarios (~1.5 min)
 *   npm run bench -- --subs 1000 --rate 100 --duration 20 --body 64
 *   npm run bench -- --rate max --subs 100          # saturation: one publish in flight
 *   npm run bench -- --scenarios fanout,max-100     # named scenarios (see --help)
 *   npm run bench -- --scenarios fanout --profile   # + the server's hottest functions
 *
 * Everything runs on loopback, is bounded in time, and stops its children on exit.
 */
import {execFileSync, fork, spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdtempSync, readdirSync, rmSync, statSync} from 'node:fs'
import {cpus, tmpdir} from 'node:os'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import type {ChildMessage, LoadConfig, LoadResult, ParentMessage} from './load.js'
import {machineTimes} from './proc.js'
import {formatSummary, summarize} from './profile.js'

const cores = cpus().length
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const LOAD = fileURLToPath(new URL('load.ts', import.meta.url))
const GUARD = fileURLToPath(new URL('server-guard.mjs', import.meta.url))
const SUBS_PER_ADDRESS = 4000 // well under half of 127.0.0.1's ~28000 ephemeral ports

interface Scenario {
  name: string
  subs: number
  /** Messages per second; 0: as fast as one publish in flight allows. */
  rate: number
  duration: number
  warmup: number
  body: number
  about: string
}

const NAMED: Record<string, Omit<Scenario, 'name' | 'warmup' | 'body'>> = {
  fanout: {subs: 1000, rate: 100, duration: 20, about: "issue 2's target: 1,000 subscribers × 100 msg/s"},
  'max-100': {subs: 100, rate: 0, duration: 10, about: 'saturation: 100 subscribers, one publish in flight, next on each 204'},
  'max-1000': {subs: 1000, rate: 0, duration: 10, about: 'saturation: 1,000 subscribers, one publish in flight'},
  'wide-10k': {subs: 10_000, rate: 10, duration: 10, about: '10,000 subscribers × 10 msg/s (same deliveries/s as fanout, 10× the connections)'},
}
const DEFAULT_SET = ['fanout', 'max-100', 'max-1000', 'wide-10k']

const HELP = `usage: npm run bench -- [options]

  --subs N          subscribers (env BENCH_SUBS; default 1000)
  --rate N|max      messages per second, or max: one publish in flight (env BENCH_RATE; default 100)
  --duration S      measured seconds (env BENCH_DURATION; default 20)
  --warmup S        seconds of publishing before the window (env BENCH_WARMUP; default 3)
  --body BYTES      message body size, at least 20 (env BENCH_BODY; default 64)
  --scenarios LIST  comma-separated: ${Object.keys(NAMED).join(', ')}, custom; or default
                    (env BENCH_SCENARIOS). Without it, --subs/--rate/--duration make one
                    custom scenario, and no flags at all run the default set:
                    ${DEFAULT_SET.join(', ')}. Given flags override the named scenarios' values.
  --server-arg ARG  extra argument for \`msgbus serve\` (repeatable), e.g. --server-arg=--slow-policy=drop
  --quiet-wait S    before each scenario, wait up to S s for the machine to be idle (other
                    processes under 0.25 cores), so their load does not disturb it (env BENCH_QUIET_WAIT; default 3)
  --profile         run the server under --cpu-prof and print its hottest functions (env BENCH_PROFILE=1)
  --no-build        use dist/ as it is instead of building it first (npm run build)
  --json            also print the results as JSON
`

// ---------------------------------------------------------------- children, and stopping them

const children = new Set<ChildProcess>()

function track(child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function killChildren(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal)
}

process.on('exit', () => killChildren('SIGKILL'))
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping\n`)
    killChildren('SIGTERM')
    setTimeout(() => process.exit(130), 300)
  })
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

async function stop(child: ChildProcess, graceMs: number): Promise<number> {
  const started = performance.now()
  child.kill('SIGTERM')
  if (!(await exited(child, graceMs))) {
    child.kill('SIGKILL')
    await exited(child, 2000)
    return Number.NaN
  }

  return performance.now() - started
}

// ---------------------------------------------------------------- options

function option(value: string | undefined, env: string): string | undefined {
  return value ?? (process.env[env] === undefined || process.env[env] === '' ? undefined : process.env[env])
}

function number(text: string, what: string, min: number): number {
  const value = Number(text)
  if (!Number.isFinite(value) || value < min) throw new Error(`--${what}: expected a number ≥ ${min}, got ${JSON.stringify(text)}`)
  return value
}

function parseOptions() {
  const {values} = parseArgs({
    options: {
      subs: {type: 'string'},
      rate: {type: 'string'},
      duration: {type: 'string'},
      warmup: {type: 'string'},
      body: {type: 'string'},
      scenarios: {type: 'string'},
      'server-arg': {type: 'string', multiple: true},
      'quiet-wait': {type: 'string'},
      profile: {type: 'boolean'},
      'no-build': {type: 'boolean'},
      json: {type: 'boolean'},
      help: {type: 'boolean', short: 'h'},
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(HELP)
    process.exit(0)
  }

  const subs = option(values.subs, 'BENCH_SUBS')
  const rate = option(values.rate, 'BENCH_RATE')
  const duration = option(values.duration, 'BENCH_DURATION')
  const warmup = option(values.warmup, 'BENCH_WARMUP')
  const body = option(values.body, 'BENCH_BODY')
  const list = option(values.scenarios, 'BENCH_SCENARIOS')
  const overrides: Partial<Scenario> = {}
  if (subs !== undefined) overrides.subs = Math.round(number(subs, 'subs', 1))
  if (rate !== undefined) overrides.rate = rate === 'max' ? 0 : number(rate, 'rate', 0.1)
  if (duration !== undefined) overrides.duration = number(duration, 'duration', 1)
  if (warmup !== undefined) overrides.warmup = number(warmup, 'warmup', 0)
  if (body !== undefined) overrides.body = Math.round(number(body, 'body', 20))
  if ((overrides.subs ?? 0) > 19_000) throw new Error('--subs: at most 19000 (20000 open files per process)')

  let names: string[]
  if (list === undefined) names = subs ?? rate ?? duration ? ['custom'] : DEFAULT_SET
  else if (list === 'default' || list === 'all') names = list === 'all' ? Object.keys(NAMED) : DEFAULT_SET
  else names = list.split(',').map((name) => name.trim()).filter(Boolean)

  const scenarios = names.map((name): Scenario => {
    const base = name === 'custom' ? {...NAMED.fanout!, about: 'custom'} : NAMED[name]
    if (!base) throw new Error(`--scenarios: no scenario ${JSON.stringify(name)} (known: ${Object.keys(NAMED).join(', ')}, custom)`)
    return {name, warmup: 3, body: 64, ...base, ...overrides}
  })
  const quietWait = option(values['quiet-wait'], 'BENCH_QUIET_WAIT')
  return {
    scenarios,
    quietWait: quietWait === undefined ? 3 : number(quietWait, 'quiet-wait', 0),
    serverArgs: values['server-arg'] ?? [],
    profile: values.profile ?? ['1', 'true', 'yes'].includes(process.env.BENCH_PROFILE ?? ''),
    build: !values['no-build'],
    json: values.json ?? false,
  }
}

// ---------------------------------------------------------------- the server and the load process

function log(text: string): void {
  process.stderr.write(`bench: ${text}\n`)
}

function build(): void {
  const started = performance.now()
  try {
    // `npm run build`: tsc, then the CLI bundle bin/run.js runs (scripts/build.ts).
    execFileSync('npm', ['run', '--silent', 'build'], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000})
    log(`built dist/ in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  } catch (error) {
    const output = String((error as {stdout?: Buffer}).stdout ?? '') + String((error as {stderr?: Buffer}).stderr ?? '')
    const tail = output.trim().split('\n').slice(-8).join('\n')
    if (!existsSync(join(ROOT, 'dist/cli/index.cjs'))) throw new Error(`the build failed and there is no dist/ to run:\n${tail}`)
    log(`the build failed (src/ is being edited?); running dist/ as it is:\n${tail}`)
  }
}

/** Waits (up to `seconds`) until the machine is nearly idle; says how busy it was. */
async function waitForQuiet(seconds: number): Promise<void> {
  const started = performance.now()
  let busy = 0
  do {
    const before = machineTimes()
    const at = performance.now()
    await new Promise((resolve) => setTimeout(resolve, 500))
    busy = (machineTimes().busy - before.busy) / ((performance.now() - at) / 1000)
    if (busy < 0.25) return
  } while (performance.now() - started < seconds * 1000)
  log(`   the machine is busy (${busy.toFixed(2)} cores used by other processes): figures will be disturbed`)
}

interface RunningServer {
  child: ChildProcess
  pid: number
  port: number
  slowLines: number
  lines: string[]
}

async function startServer(scenario: Scenario, serverArgs: string[], profileDir: string | undefined): Promise<RunningServer> {
  const lifetimeMs = (scenario.warmup + scenario.duration + scenario.subs / 200 + 120) * 1000
  const nodeArgs = ['--import', GUARD, ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])]
  const child = track(
    spawn(process.execPath, [...nodeArgs, join(ROOT, 'bin/run.js'), 'serve', '--port', '0', '--address', '127.0.0.1', ...serverArgs], {
      cwd: ROOT,
      env: {...process.env, NO_COLOR: '1', MSGBUS_BENCH_PARENT: String(process.pid), MSGBUS_BENCH_DEADLINE_MS: String(lifetimeMs)},
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  )
  const server: RunningServer = {child, pid: child.pid!, port: 0, slowLines: 0, lines: []}
  return new Promise((resolve, reject) => {
    let pending = ''
    const timer = setTimeout(() => reject(new Error(`the server did not report where it listens within 20 s:\n${server.lines.join('\n')}`)), 20_000)
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (text: string) => {
      const lines = (pending + text).split('\n')
      pending = lines.pop()!
      for (const line of lines) {
        server.lines.push(line)
        if (server.lines.length > 50) server.lines.shift()
        if (/ slow /.test(line)) server.slowLines++
        const listening = / listen HTTP on ([\d.]+):(\d+)/.exec(line)
        if (listening && server.port === 0) {
          server.port = Number(listening[2])
          clearTimeout(timer)
          resolve(server)
        }
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (server.port === 0) reject(new Error(`the server exited (${signal ?? code}) before listening:\n${server.lines.join('\n')}`))
    })
  })
}

interface Outcome {
  scenario: Scenario
  result?: LoadResult
  error?: string
  shutdownMs?: number
  closedProperly?: number
  progress: string[]
  slowLines: number
  profile?: string
}

async function runScenario(scenario: Scenario, serverArgs: string[], profile: boolean): Promise<Outcome> {
  const outcome: Outcome = {scenario, progress: [], slowLines: 0}
  const profileDir = profile ? mkdtempSync(join(tmpdir(), 'msgbus-bench-prof-')) : undefined
  const rate = scenario.rate > 0 ? `${scenario.rate} msg/s` : 'max rate'
  log(`── ${scenario.name}: ${scenario.subs} subscribers, ${rate}, ${scenario.body}-byte bodies, ${scenario.warmup} s warm-up + ${scenario.duration} s`)
  const server = await startServer(scenario, serverArgs, profileDir)
  let serverGone = false
  server.child.once('exit', () => (serverGone = true))
  const config: LoadConfig = {
    scenario: scenario.name,
    host: '127.0.0.1',
    port: server.port,
    serverPid: server.pid,
    channel: 'bench',
    subs: scenario.subs,
    rate: scenario.rate,
    warmup: scenario.warmup,
    duration: scenario.duration,
    body: scenario.body,
    perAddress: SUBS_PER_ADDRESS,
    connectConcurrency: 200,
  }
  const load = track(fork(LOAD, [JSON.stringify(config)], {cwd: ROOT, execArgv: ['--import', 'tsx/esm'], stdio: ['ignore', 'inherit', 'inherit', 'ipc']}))
  const limitMs = (scenario.warmup + scenario.duration + scenario.subs / 200 + 60) * 1000

  try {
    outcome.result = await new Promise<LoadResult>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no result after ${(limitMs / 1000).toFixed(0)} s`)), limitMs)
      load.on('message', (message: ChildMessage) => {
        if (message.type === 'progress') {
          outcome.progress.push(message.text)
          log(`   ${message.text}`)
        } else if (message.type === 'result') {
          clearTimeout(timer)
          resolve(message.result)
        } else if (message.type === 'error') {
          clearTimeout(timer)
          reject(new Error(message.message))
        }
      })
      load.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`the load process exited (${signal ?? code}) without a result`))
      })
      server.child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`the server exited (${signal ?? code}) during the run:\n${server.lines.slice(-10).join('\n')}`))
      })
    })
    if (serverGone) throw new Error('the server exited during the run')

    // Stop the server gracefully while the subscribers are still connected: it ends every stream properly.
    const closed = new Promise<{properly: number; open: number} | undefined>((resolve) => {
      load.on('message', (message: ChildMessage) => {
        if (message.type === 'closed') resolve(message)
      })
      load.once('exit', () => resolve(undefined))
    })
    outcome.shutdownMs = await stop(server.child, profile ? 30_000 : 5000)
    load.send({type: 'exit'} satisfies ParentMessage)
    outcome.closedProperly = (await Promise.race([closed, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5000))]))?.properly
  } catch (error) {
    outcome.error = (error as Error).message
    log(`   FAILED: ${outcome.error}`)
  } finally {
    outcome.slowLines = server.slowLines
    if (server.child.exitCode === null && server.child.signalCode === null) await stop(server.child, profile ? 30_000 : 3000)
    if (load.exitCode === null && load.signalCode === null) await stop(load, 2000)
  }

  if (profileDir) {
    const files = readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile'))
    const newest = files.map((name) => join(profileDir, name)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]
    if (newest) {
      try {
        outcome.profile = formatSummary(summarize(newest), 25)
      } catch (error) {
        outcome.profile = `  (could not read the profile: ${(error as Error).message})`
      }
    } else {
      outcome.profile = '  (the server wrote no profile)'
    }

    rmSync(profileDir, {recursive: true, force: true})
  }

  return outcome
}

// ---------------------------------------------------------------- the table

const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : '–')
const grouped = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–')

function rateText(r: LoadResult): string {
  return r.rate > 0 ? grouped(r.rate) : `max ${grouped(r.messages / r.windowSeconds)}`
}

function table(outcomes: Outcome[]): string {
  const header = [
    'scenario',
    'subs',
    'rate msg/s',
    'dur s',
    'delivered/expected',
    'deliveries/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'srv CPU s',
    'µs/deliv',
    'srv RSS MiB',
    'load CPU s',
  ]
  const rows = outcomes.map(({scenario, result: r, error}) => {
    if (!r) return [scenario.name, grouped(scenario.subs), scenario.rate > 0 ? grouped(scenario.rate) : 'max', fixed(scenario.duration, 0), `FAILED: ${error}`]
    return [
      scenario.name,
      grouped(r.subs),
      rateText(r),
      fixed(r.windowSeconds, 1),
      `${grouped(r.delivered)}/${grouped(r.expected)}`,
      grouped(r.delivered / r.windowSeconds),
      fixed(r.latencyMs.p50, 2),
      fixed(r.latencyMs.p99, 2),
      fixed(r.latencyMs.max, 1),
      fixed(r.serverCpuSeconds, 2),
      fixed((r.serverCpuSeconds * 1e6) / r.delivered, 2),
      fixed(r.serverRssBytes / 2 ** 20, 1),
      fixed(r.loadCpuSeconds, 2),
    ]
  })
  const widths = header.map((title, i) => Math.max(title.length, ...rows.filter((row) => row.length === header.length).map((row) => (row[i] ?? '').length)))
  const line = (cells: string[]) =>
    cells.length < header.length
      ? cells.slice(0, -1).map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ') + '  ' + cells.at(-1)
      : cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')
  return [line(header), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n')
}

function notes(outcome: Outcome): string[] {
  const r = outcome.result
  if (!r) return []
  const out: string[] = []
  const loss = r.expected - r.delivered
  out.push(
    `${r.scenario}: ${grouped(r.messages)} messages in ${fixed(r.windowSeconds, 2)} s` +
      (r.rate > 0 ? '' : ` (${grouped(r.messages / r.windowSeconds)} msg/s, one in flight)`) +
      `; loss ${grouped(loss)} (${fixed((100 * loss) / r.expected, 3)} %), duplicates ${r.duplicates}, ` +
      `subscribers with gaps over the whole run ${r.lossySubscribers} (${grouped(r.missing)} missing, ${r.backwards} out of order), ` +
      `streams lost ${r.lostStreams}, slow-subscriber log lines ${outcome.slowLines}`,
  )
  out.push(
    `   latency ms: p50 ${fixed(r.latencyMs.p50, 2)}  p90 ${fixed(r.latencyMs.p90, 2)}  p99 ${fixed(r.latencyMs.p99, 2)}  ` +
      `p99.9 ${fixed(r.latencyMs.p999, 2)}  max ${fixed(r.latencyMs.max, 2)}  mean ${fixed(r.latencyMs.mean, 2)}  (${grouped(r.latencyMs.samples)} samples); ` +
      `publish→204 p50 ${fixed(r.publishRttMs.p50, 2)} p99 ${fixed(r.publishRttMs.p99, 2)} max ${fixed(r.publishRttMs.max, 1)}` +
      (r.rate > 0 ? `; send lag vs schedule p99 ${fixed(r.sendLagMs.p99, 2)} max ${fixed(r.sendLagMs.max, 1)}; most publishes in flight ${r.maxInFlight}` : ''),
  )
  out.push(
    `   server: CPU ${fixed(r.serverCpuSeconds, 2)} s = ${fixed((100 * r.serverCpuSeconds) / r.windowSeconds, 0)} % of a core ` +
      `(user ${fixed(r.serverUserSeconds, 2)} s, kernel ${fixed(r.serverCpuSeconds - r.serverUserSeconds, 2)} s), ` +
      `RSS ${fixed(r.serverRssBytes / 2 ** 20, 1)} MiB (peak ${fixed(r.serverHwmBytes / 2 ** 20, 1)}), ` +
      `Msgbus-Subscribers mismatches ${r.subscriberCountMismatches}, publish errors ${r.publishErrors}; ` +
      `graceful stop ${fixed(outcome.shutdownMs ?? Number.NaN, 0)} ms, streams closed properly ${outcome.closedProperly ?? '?'}/${r.subs}; ` +
      `load: CPU ${fixed((100 * r.loadCpuSeconds) / r.windowSeconds, 0)} % of a core, connect ${fixed(r.connectSeconds, 2)} s`,
  )
  // On this kernel irq/softirq ticks are also charged to the process they interrupt (loopback TCP
  // delivery runs in the sender's softirq), so they are inside the server's and load's CPU already.
  const others = r.machineBusySeconds - r.serverCpuSeconds - r.loadCpuSeconds
  out.push(
    `   machine over the window: ${fixed(r.machineBusySeconds / r.windowSeconds, 2)} of ${cores} cores busy, ` +
      `of which irq+softirq ${fixed(r.machineIrqSeconds, 2)} s; other processes about ${fixed(Math.max(0, others), 2)} s` +
      (others / r.windowSeconds > 0.15 ? ' — the machine was not quiet: latency and CPU figures are disturbed' : ''),
  )
  if (r.subs === 1000 && r.rate === 100 && r.body === 64) {
    const perDelivery = (r.serverCpuSeconds * 1e6) / r.delivered
    const mark = (ok: boolean) => (ok ? 'met' : 'MISSED')
    out.push(
      `   issue 2 targets: zero loss ${mark(loss === 0 && r.duplicates === 0)}; p99 ${fixed(r.latencyMs.p99, 2)} ≤ 10 ms ${mark(r.latencyMs.p99 <= 10)}; ` +
        `CPU ${fixed(perDelivery, 2)} ≤ 7.5 µs/delivery ${mark(perDelivery <= 7.5)}`,
    )
  }

  return out
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const options = parseOptions()
  if (options.build) build()
  const outcomes: Outcome[] = []
  for (const scenario of options.scenarios) {
    await waitForQuiet(options.quietWait)
    outcomes.push(await runScenario(scenario, options.serverArgs, options.profile))
  }

  let out = `\nmsgbus fan-out benchmark: ${cores} cores, node ${process.version}, loopback; server \`msgbus serve\`${options.serverArgs.length ? ` ${options.serverArgs.join(' ')}` : ''}, ` +
    `latency = publisher send → subscriber read (one clock), CPU = utime+stime over the window${options.profile ? ' (UNDER --cpu-prof)' : ''}\n\n`
  out += table(outcomes) + '\n\n'
  for (const outcome of outcomes) out += notes(outcome).join('\n') + (outcome.result ? '\n' : '')
  for (const outcome of outcomes) if (outcome.profile) out += `\nserver profile, ${outcome.scenario.name} (whole server lifetime):\n${outcome.profile}\n`
  process.stdout.write(out)
  if (options.json) process.stdout.write(JSON.stringify(outcomes.map(({scenario, result, error, shutdownMs, closedProperly, slowLines}) => ({scenario, result, error, shutdownMs, closedProperly, slowLines})), null, 2) + '\n')
  process.exitCode = outcomes.some((outcome) => outcome.error) ? 1 : 0
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${(error as Error)?.message ?? error}\n`)
  killChildren('SIGTERM')
  process.exitCode = 1
})
