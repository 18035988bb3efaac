/**
 * nginx with the nchan module, the peer of `npm run bench -- --peer nchan`:
 * installs it when it is missing (Debian's nginx-light and
 * libnginx-mod-nchan, as root, unless told not to), and runs it from
 * bench/nchan/nginx.conf in a temporary directory on a free loopback port,
 * stopped with the benchmark whatever happens to it.
 */
import {execFileSync, spawn} from 'node:child_process'
import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {freePort, log, stop} from '../tools/processes.js'
import {childrenOf} from '../tools/proc.js'
import {until} from '../tools/wait.js'

const NGINX = '/usr/sbin/nginx'
const MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so'
const PACKAGES = ['nginx-light', 'libnginx-mod-nchan']
const TEMPLATE = fileURLToPath(new URL('nchan/nginx.conf', import.meta.url))

/** A server of the benchmark: the process whose CPU time and memory are the server's, where it listens, how it ends. */
export interface BenchServer {
  kind: 'msgbus' | 'nchan'
  /** The process that serves (nginx's one worker; msgbus serve itself). */
  pid: number
  port: number
  url: string
  /** `slow` lines msgbus serve logged (slow subscribers); nginx logs none. */
  slowLines: number
  /** Its last lines of output, to say why it failed. */
  lines(): string
  exit: Promise<unknown>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the time it took, NaN if it had to be killed. */
  stop(graceMs: number): Promise<number>
}

/** nginx and the module are there, or installed now when allowed; throws saying what to do otherwise. */
export function ensureNchan(install: boolean): void {
  if (existsSync(NGINX) && existsSync(MODULE)) return
  const missing = `nginx with the nchan module is not installed (${NGINX}, ${MODULE})`
  const root = process.getuid?.() === 0
  if (!install || !root || !existsSync('/usr/bin/apt-get')) {
    const why = !install ? '--no-install' : !root ? 'not root' : 'no apt-get'
    throw new Error(`${missing}; ${why}: install them with \`apt-get install -y ${PACKAGES.join(' ')}\` (Debian) and run again`)
  }

  log(`${missing}: apt-get install -y ${PACKAGES.join(' ')}`)
  const apt = (args: string[]) => execFileSync('apt-get', args, {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, DEBIAN_FRONTEND: 'noninteractive'}, timeout: 600_000})
  try {
    apt(['install', '-y', ...PACKAGES])
  } catch {
    // A fresh machine may not have the package lists yet.
    apt(['update'])
    apt(['install', '-y', ...PACKAGES])
  }

  if (!existsSync(MODULE)) throw new Error(`${missing} even after apt-get install`)
}

/** The config for this run: the template with the module, the directory and the port filled in. */
function config(dir: string, port: number): string {
  return readFileSync(TEMPLATE, 'utf8').replaceAll('@MODULE@', MODULE).replaceAll('@DIR@', dir).replaceAll('@PORT@', String(port))
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({host: '127.0.0.1', port}, () => {
      socket.destroy()
      resolve(true)
    })
    socket.on('error', () => resolve(false))
  })
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // gone already
  }
}

/**
 * Starts nginx (master and one worker) in the foreground; resolves once the
 * worker is there and the port answers. It is killed, master and worker,
 * when this process exits or `lifetimeMs` has passed.
 */
export async function startNchan(lifetimeMs: number): Promise<BenchServer> {
  const dir = mkdtempSync(join(tmpdir(), 'msgbus-bench-nchan-'))
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, config(dir, port))
  const child = spawn(NGINX, ['-c', conf, '-p', `${dir}/`], {stdio: ['ignore', 'pipe', 'pipe']})
  let output = ''
  child.stdout!.on('data', (data: Buffer) => (output += data.toString()))
  child.stderr!.on('data', (data: Buffer) => (output += data.toString()))
  const exit = new Promise<unknown>((resolve) => child.once('exit', resolve))
  const master = child.pid!
  let worker = 0
  // nginx's worker outlives a killed master: both go, with this process or after the lifetime.
  const killBoth = () => {
    kill(master, 'SIGKILL')
    if (worker) kill(worker, 'SIGKILL')
  }
  process.once('exit', killBoth)
  const lifetime = setTimeout(killBoth, lifetimeMs).unref()
  const lines = () => {
    let errors = ''
    try {
      errors = readFileSync(join(dir, 'error.log'), 'utf8')
    } catch {
      // not written yet
    }

    return (output + errors).trim().split('\n').slice(-10).join('\n')
  }

  let portOpen = false
  await until(
    async () => {
      worker = childrenOf(master)[0] ?? 0
      portOpen = worker > 0 && (await listening(port))
      return portOpen
    },
    () => `nginx to listen on ${port} with its worker:\n${lines()}`,
    {timeoutMs: 15_000, everyMs: 100, stop: () => child.exitCode !== null && `nginx exited (${child.exitCode}):\n${lines()}`},
  )

  return {
    kind: 'nchan',
    pid: worker,
    port,
    url: `http://127.0.0.1:${port}`,
    slowLines: 0,
    lines,
    exit,
    async stop(graceMs) {
      clearTimeout(lifetime)
      const took = await stop(child, graceMs)
      killBoth()
      process.removeListener('exit', killBoth)
      // A worker that crashed was replaced by the master: say so, it is an nchan failure, not a slow stop.
      if (/exited on signal/.test(lines())) log(`   nginx: ${lines().split('\n').filter((line) => /exited on signal/.test(line)).join('; ')}`)
      rmSync(dir, {recursive: true, force: true})
      return took
    },
  }
}
