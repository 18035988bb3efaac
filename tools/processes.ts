/**
 * The child processes of the benchmark, the soak and the fault tests:
 * `msgbus serve`, `msgbus test-sub` and `msgbus test-pub`, each `node
 * bin/run.js ...` in its own process, run from a private copy of the built
 * CLI (or bin/run.js itself), guarded so that none outlives the process that
 * started it, and killed when it exits. Shared by bench/ and test/; tools/
 * depends on neither.
 */
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {createServer, type AddressInfo} from 'node:net'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {fileURLToPath} from 'node:url'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
const GUARD = fileURLToPath(new URL('server-guard.mjs', import.meta.url))

export function log(text: string): void {
  process.stderr.write(`bench: ${text}\n`)
}

// ---------------------------------------------------------------- every child, and stopping them

const children = new Set<ChildProcess>()
let snapshot: string | undefined

function killChildren(signal: NodeJS.Signals): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal)
}

process.on('exit', () => {
  killChildren('SIGKILL')
  if (snapshot) rmSync(snapshot, {recursive: true, force: true})
})
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping\n`)
    killChildren('SIGTERM')
    setTimeout(() => process.exit(130), 500)
  })
}

/** Stops every child still running (SIGTERM, then SIGKILL after a grace period). */
export async function stopAll(graceMs = 3000): Promise<void> {
  await Promise.all([...children].map((child) => stop(child, graceMs)))
}

export function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`; resolves with the time it took, NaN if it had to be killed. */
export async function stop(child: ChildProcess, graceMs: number): Promise<number> {
  if (child.exitCode !== null || child.signalCode !== null) return 0
  const started = performance.now()
  child.kill('SIGTERM')
  if (!(await exited(child, graceMs))) {
    child.kill('SIGKILL')
    await exited(child, 2000)
    return Number.NaN
  }

  return performance.now() - started
}

// ---------------------------------------------------------------- the CLI they run

/**
 * Builds dist/ (`npm run build`: tsc, then the CLI bundle) unless told not
 * to, then copies what `node bin/run.js` runs (bin/ with its package.json,
 * which makes it CommonJS, package.json, and dist/cli: the bundle holding
 * oclif and every command, the fast paths' bundles, their code caches) to a
 * temporary folder, so that every process of the run uses one build even if
 * dist/ is rebuilt meanwhile. Returns the path of the copy's bin/run.js.
 */
export function prepareCli(build: boolean): string {
  if (build) {
    const started = performance.now()
    try {
      execFileSync('npm', ['run', '--silent', 'build'], {cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000})
      log(`built dist/ in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    } catch (error) {
      const output = String((error as {stdout?: Buffer}).stdout ?? '') + String((error as {stderr?: Buffer}).stderr ?? '')
      const tail = output.trim().split('\n').slice(-8).join('\n')
      if (!existsSync(join(ROOT, 'dist/cli/index.cjs'))) throw new Error(`the build failed and there is no dist/ to run:\n${tail}`)
      log(`the build failed (src/ is being edited?); running dist/ as it is:\n${tail}`)
    }
  }

  snapshot = mkdtempSync(join(tmpdir(), 'msgbus-bench-cli-'))
  mkdirSync(join(snapshot, 'bin'))
  mkdirSync(join(snapshot, 'dist', 'cli'), {recursive: true})
  if (!existsSync(join(ROOT, 'dist/cli/index.cjs'))) throw new Error('dist/cli/index.cjs is missing: run `npm run build`')
  for (const file of ['bin/run.js', 'bin/package.json', 'package.json']) copyFileSync(join(ROOT, file), join(snapshot, file))
  // The bundle, the fast paths' bundles and their code caches.
  cpSync(join(ROOT, 'dist/cli'), join(snapshot, 'dist/cli'), {recursive: true})
  // The native sender, where the build made one: without it the server writes through Node's streams.
  if (existsSync(join(ROOT, 'dist/native'))) cpSync(join(ROOT, 'dist/native'), join(snapshot, 'dist/native'), {recursive: true})

  // The viewer page, which the server reads at start-up.
  cpSync(join(ROOT, 'web'), join(snapshot, 'web'), {recursive: true})
  // What the bundle leaves out and requires when asked for (prom-client for --metrics, a --bus link's client).
  symlinkSync(join(ROOT, 'node_modules'), join(snapshot, 'node_modules'))
  return join(snapshot, 'bin', 'run.js')
}

// ---------------------------------------------------------------- one child

export interface Cli {
  child: ChildProcess
  pid: number
  label: string
  /** The last lines it wrote to stderr. */
  lines: string[]
  /** Everything it wrote to stdout. */
  stdout: string
  /** Called with every stderr line as it comes. */
  onLine?: (line: string, at: number) => void
  /** Resolves when it has exited, with its exit code (or signal). */
  exit: Promise<number | NodeJS.Signals>
}

/**
 * Runs `node [nodeArgs] run.js args...` with the guard preloaded: it stops
 * the child (SIGTERM, which every msgbus command takes as "finish now") when
 * the benchmark is gone or `lifetimeMs` has passed.
 */
export function runCli(runJs: string, label: string, args: string[], lifetimeMs: number, nodeArgs: string[] = []): Cli {
  const child = spawn(process.execPath, ['--import', GUARD, ...nodeArgs, runJs, ...args], {
    cwd: ROOT,
    env: {...process.env, NO_COLOR: '1', MSGBUS_BENCH_PARENT: String(process.pid), MSGBUS_BENCH_DEADLINE_MS: String(Math.round(lifetimeMs))},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  const cli: Cli = {
    child,
    pid: child.pid!,
    label,
    lines: [],
    stdout: '',
    exit: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        children.delete(child)
        resolve(signal ?? code ?? 0)
      })
    }),
  }
  if (cli.pid === undefined) throw new Error(`${label}: could not start ${process.execPath}`)
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (text: string) => (cli.stdout += text))
  let pending = ''
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (text: string) => {
    const at = performance.now()
    const lines = (pending + text).split('\n')
    pending = lines.pop()!
    for (const line of lines) {
      cli.lines.push(line)
      if (cli.lines.length > 40) cli.lines.shift()
      cli.onLine?.(line, at)
    }
  })
  return cli
}

/** The one JSON document a tool printed with --json (its last line that is one). */
export function jsonOf<T>(cli: Cli): T {
  const lines = cli.stdout.trim().split('\n').reverse()
  for (const line of lines) {
    if (!line.startsWith('{')) continue
    try {
      return JSON.parse(line) as T
    } catch {
      // not this one
    }
  }

  throw new Error(`${cli.label} printed no JSON document; stderr:\n${cli.lines.slice(-8).join('\n')}`)
}

// ---------------------------------------------------------------- test-sub

export interface SubProcess {
  cli: Cli
  requested: number
  /** From its last progress line (`connected N/M failed F | R msg/s ...`). */
  connected: number
  failed: number
  lastRate: number
  lastLineAt: number
  /** When it last reported a second with messages in it. */
  lastBusyAt: number
}

/** `msgbus test-sub -n N ... --interval 1 --json` in its own process, its progress followed. */
export function startTestSub(
  runJs: string,
  url: string,
  channel: string,
  requested: number,
  label: string,
  lifetimeSeconds: number,
  {channels = 1, nodeArgs = [], extraArgs = []}: {channels?: number; nodeArgs?: string[]; extraArgs?: string[]} = {},
): SubProcess {
  const args = ['test-sub', '--url', url, '-c', channel, '--channels', String(channels), '-n', String(requested), '--interval', '1', '-d', String(Math.ceil(lifetimeSeconds)), '--json', ...extraArgs]
  const cli = runCli(runJs, label, args, (lifetimeSeconds + 15) * 1000, nodeArgs)
  const proc: SubProcess = {cli, requested, connected: 0, failed: 0, lastRate: Number.NaN, lastLineAt: 0, lastBusyAt: 0}
  cli.onLine = (line, at) => {
    const progress = /connected (\d+)\/(\d+) failed (\d+) \| ([\d.]+) msgs?\/s/.exec(line)
    if (!progress) return
    proc.connected = Number(progress[1])
    proc.failed = Number(progress[3])
    proc.lastRate = Number(progress[4])
    proc.lastLineAt = at
    if (proc.lastRate > 0) proc.lastBusyAt = at
  }

  return proc
}

/** A loopback port free now, for a server the benchmark starts itself (redis-server, nats-server). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}
