// Supervisors: what stops `msgbus serve` as an operator starts it, under npx
// and under systemd (the unit in contrib/, run as systemd would run it).
import assert from 'node:assert/strict'
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {connect} from 'node:net'
import {dirname, join} from 'node:path'
import {BIN, ROOT, escapeRegExp, freePort, request, tempFolder, until} from './support/harness.js'

/** The environment without what `npm test` adds: npm's variables would mark the server as started by npm. */
function withoutNpm(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !/^npm_/i.test(name)))
}

/** A process still running (a zombie, waiting for a parent to reap it, has stopped). */
function running(pid: number): boolean {
  try {
    // The state is the field after the command's name in parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^\S+ \(.*\) [ZX]/s.test(stat)
  } catch {
    return false
  }
}

/** True when something accepts connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** Every process below `root`, from /proc, each with its parent and command line. */
function descendants(root: number): Array<{pid: number; ppid: number; args: string}> {
  const all = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
        const args = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim()
        return [{pid: Number(name), ppid, args}]
      } catch {
        return []
      }
    })
  const found: typeof all = []
  const parents = new Set([root])
  for (let grew = true; grew; ) {
    grew = false
    for (const process of all) {
      if (parents.has(process.ppid) && !parents.has(process.pid)) {
        parents.add(process.pid)
        found.push(process)
        grew = true
      }
    }
  }

  return found
}

function collect(child: ChildProcess): () => string {
  let text = ''
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()))
  return () => text
}

describe('supervisors', function () {
  this.timeout(60_000)
  const inTemp = tempFolder('msgbus-supervisor-')
  const children: ChildProcess[] = []
  const strays: number[] = []
  after(() => {
    for (const child of children) child.kill('SIGKILL')
    for (const pid of strays) if (running(pid)) process.kill(pid, 'SIGKILL')
  })

  it('kill -TERM of `npx msgbus serve` stops the server: port closed, node gone', async () => {
    // A project that depends on msgbus, as a user's would: npx finds the bin
    // in node_modules/.bin and runs it as npm does, through a shell, offline.
    const project = inTemp('project')
    mkdirSync(join(project, 'node_modules', '.bin'), {recursive: true})
    writeFileSync(join(project, 'package.json'), JSON.stringify({name: 'app', version: '1.0.0', private: true}))
    symlinkSync(BIN, join(project, 'node_modules', '.bin', 'msgbus'))
    const npx = existsSync(join(dirname(process.execPath), 'npx')) ? join(dirname(process.execPath), 'npx') : 'npx'
    const port = await freePort()
    const env = {
      ...withoutNpm(),
      NO_COLOR: '1',
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
      npm_config_cache: inTemp('npm-cache'),
    }
    const child = spawn(npx, ['msgbus', 'serve', '--port', String(port), '--address', '127.0.0.1'], {cwd: project, env, stdio: ['ignore', 'pipe', 'pipe']})
    children.push(child)
    const output = collect(child)
    await until(() => /listen HTTP on/.test(output()), () => `npx msgbus serve to listen: ${output()}`, {timeoutMs: 30_000, everyMs: 100, stop: () => child.exitCode !== null && `npx exited (${child.exitCode})`})
    const server = descendants(child.pid!).find(({args}) => /\bserve --port/.test(args) && /node/.test(args))
    assert.ok(server, `the node process under npx: ${JSON.stringify(descendants(child.pid!))}`)
    strays.push(server.pid)
    // What made the bug: npm ran it through a shell, which SIGTERM kills without passing it on.
    assert.notEqual(server.pid, child.pid)

    child.kill('SIGTERM')
    await until(async () => !running(server.pid) && !(await listening(port)), () => `the server (pid ${server.pid}) to stop; ${output()}`, {
      timeoutMs: 10_000,
      everyMs: 100,
    })
    assert.match(output(), /stop parent process \d+ exited/)
  })

  it('a server not started by npm outlives the shell that started it (nohup, &)', async () => {
    const port = await freePort()
    const log = inTemp('background.log')
    const shell = spawn('sh', ['-c', `"$0" "$1" serve --port ${port} --address 127.0.0.1 >"$2" 2>&1 & echo $!`, process.execPath, BIN, log], {
      env: {...withoutNpm(), NO_COLOR: '1'},
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    const pid = Number((await new Promise<Buffer>((resolve) => shell.stdout.once('data', resolve))).toString())
    strays.push(pid)
    const logged = () => (existsSync(log) ? readFileSync(log, 'utf8') : '')
    await until(() => /listen HTTP on/.test(logged()), () => `serve to listen: ${logged()}`, {timeoutMs: 10_000, everyMs: 100})
    await until(() => shell.exitCode !== null, 'the shell to exit')
    // A parent watch would have stopped it within a second.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    assert.ok(running(pid), `still running; ${logged()}`)
    assert.equal((await request(`http://127.0.0.1:${port}/msgbus/x`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: 'x'})).status, 204)
    process.kill(pid, 'SIGTERM')
    await until(() => !running(pid), () => `pid ${pid} to stop on SIGTERM; ${logged()}`, {timeoutMs: 10_000, everyMs: 100})
  })

  describe('the systemd unit (contrib/systemd/msgbus.service)', () => {
    const unit = parseUnit(readFileSync(join(ROOT, 'contrib', 'systemd', 'msgbus.service'), 'utf8'))

    it('is hardened and restarts on failure', () => {
      const service = unit.Service
      for (const [key, value] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['StateDirectory', 'msgbus'], ['Restart', 'on-failure'], ['KillSignal', 'SIGTERM']]) {
        assert.deepEqual(service[key], [value], key)
      }
    })

    it('ExecStart with its Environment= serves with those options, and SIGTERM stops it with exit 0', async () => {
      const service = unit.Service
      // As systemd would: %S is the state root, under which StateDirectory= makes the service's folder.
      const stateRoot = inTemp('state')
      mkdirSync(join(stateRoot, service.StateDirectory[0]), {recursive: true})
      const specifiers = (text: string) => text.replace(/%(.)/g, (_, c: string) => (c === 'S' ? stateRoot : c === '%' ? '%' : assert.fail(`specifier %${c} not known to this test`)))
      const environment = Object.fromEntries(service.Environment.flatMap(words).map((assignment) => {
        const equals = assignment.indexOf('=')
        return [assignment.slice(0, equals), specifiers(assignment.slice(equals + 1))]
      }))
      assert.ok(environment.MSGBUS_HISTORY_DIR, 'the unit keeps the history in its state directory')
      const [binary, ...args] = words(specifiers(service.ExecStart[0].replace(/^[-@:+!]+/, '')))
      assert.match(binary, /\/msgbus$/)
      const port = await freePort()
      // systemd starts a service with a clean environment: PATH and the unit's own. The port is a free one here.
      const child = spawn(process.execPath, [BIN, ...args], {
        env: {PATH: process.env.PATH, ...environment, MSGBUS_PORT: String(port), MSGBUS_ADDRESS: '127.0.0.1'},
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      children.push(child)
      const output = collect(child)
      await until(() => /listen HTTP on/.test(output()), () => `serve to listen: ${output()}`, {timeoutMs: 10_000, everyMs: 100, stop: () => child.exitCode !== null && `exited (${child.exitCode})`})
      assert.match(output(), new RegExp(`listen HTTP on 127\\.0\\.0\\.1:${port}\\b`))
      assert.match(output(), new RegExp(`history 0 messages from ${escapeRegExp(environment.MSGBUS_HISTORY_DIR)}`))
      const published = await request(`http://127.0.0.1:${port}/msgbus/x`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: 'kept'})
      assert.equal(published.status, 204)
      assert.ok(readdirSync(environment.MSGBUS_HISTORY_DIR).length > 0, 'the history is written in the state directory')

      child.kill(service.KillSignal[0] as NodeJS.Signals)
      const [code] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (...result) => resolve(result)))
      assert.equal(code, 0, output())
      assert.match(output(), /stop SIGTERM received/)
    })
  })
})

/** A unit file's sections, each key with its values in order (a key may be given more than once). */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {}
  let section: Record<string, string[]> | undefined
  // A line ending in a backslash goes on on the next.
  for (const line of text.replace(/\\\n/g, ' ').split('\n').map((line) => line.trim())) {
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header) {
      section = sections[header[1]] = {}
      continue
    }

    const equals = line.indexOf('=')
    assert.ok(section && equals > 0, `a key=value line in a section: ${line}`)
    const key = line.slice(0, equals).trim()
    ;(section[key] ??= []).push(line.slice(equals + 1).trim())
  }

  return sections
}

/** Words as systemd splits ExecStart= and Environment=: at spaces, double or single quotes keeping a word whole. */
function words(text: string): string[] {
  return [...text.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)].map((match) => match[1]?.replace(/\\(.)/g, '$1') ?? match[2] ?? match[3])
}
