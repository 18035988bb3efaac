// The README's install, in a fresh clone: `msgbus` ends up on PATH and its
// man pages where man(1) finds them. The clone is of this repository's HEAD
// (what is committed); it installs into a temporary npm prefix, offline.
//
// The README's first step, `npm install`, fetches the dependencies and builds
// dist/ (the prepare script). Offline, the clone gets this checkout's
// node_modules through a symlink instead (read only: no npm command runs on
// it), and `npm run build`, what prepare runs. The second step is run as the
// README writes it, with --prefix added.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {delimiter, join} from 'node:path'
import {ROOT} from './support/harness.js'

/** The README's global install, which the set-up command must contain. */
const GLOBAL_INSTALL = ['npm', 'install', '-g', '--ignore-scripts', '.']

interface Ran {
  status: number | null
  stdout: string
  stderr: string
}

/**
 * A command to its end, from `cwd`, with `env` over this process's
 * environment (a variable set to undefined is removed). Synchronous: nothing
 * else runs in this file meanwhile.
 */
function sh(command: string, {cwd, env = {}, timeoutMs = 60_000}: {cwd?: string; env?: Record<string, string | undefined>; timeoutMs?: number} = {}): Ran {
  const merged: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1'}
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete merged[name]
    else merged[name] = value
  }

  const result = spawnSync('sh', ['-c', command], {cwd, env: merged, encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe']})
  return {status: result.status, stdout: result.stdout, stderr: result.stderr}
}

function ok(command: string, options: Parameters<typeof sh>[1] = {}): Ran {
  const result = sh(command, options)
  assert.equal(result.status, 0, `${command} (${result.status}):\n${result.stdout}${result.stderr}`)
  return result
}

const quote = (word: string): string => `'${word.replace(/'/g, "'\\''")}'`

describe('install from a fresh clone, as the README says @slow', function () {
  // Cloning is quick; building the clone (tsc, the bundle and its code cache) takes 10-60 s on a busy machine.
  this.timeout(240_000)
  let temp = ''
  let clone = ''
  let prefix = ''
  let elsewhere = ''

  before(() => {
    temp = mkdtempSync(join(tmpdir(), 'msgbus-install-'))
    clone = join(temp, 'msgbus')
    prefix = join(temp, 'prefix')
    elsewhere = join(temp, 'elsewhere')
    mkdirSync(elsewhere)
    ok(`git clone -q ${quote(ROOT)} ${quote(clone)}`)
    symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(clone, 'node_modules'))
    ok('npm run build', {cwd: clone, timeoutMs: 180_000})
    ok(`${GLOBAL_INSTALL.join(' ')} --prefix ${quote(prefix)} --offline --no-audit --no-fund`, {cwd: clone})
  })

  after(() => {
    if (temp === '') return
    // The symlink first, so that nothing can reach the real node_modules.
    if (existsSync(join(clone, 'node_modules'))) unlinkSync(join(clone, 'node_modules'))
    rmSync(temp, {recursive: true, force: true})
  })

  it("the README's set-up command is the one tested here", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const setUp = readme.slice(readme.indexOf('## Set-up'))
    const command = /^ {4}(npm install && .*)$/m.exec(setUp)?.[1]
    assert.ok(command, 'no `npm install && ...` line under ## Set-up')
    assert.deepEqual(command.split(' && '), ['npm install', GLOBAL_INSTALL.join(' '), 'msgbus serve'])
  })

  it("msgbus is in the prefix's bin and runs from any folder", () => {
    const {version} = JSON.parse(readFileSync(join(clone, 'package.json'), 'utf8')) as {version: string}
    const bin = join(prefix, 'bin', 'msgbus')
    const shown = ok('command -v msgbus && msgbus --version && msgbus serve -h', {cwd: elsewhere, env: {PATH: onPath()}})
    const [path, versionLine, ...help] = shown.stdout.split('\n')
    assert.equal(path, bin)
    assert.match(versionLine, new RegExp(`^msgbus/${version.replace(/\./g, '\\.')} `))
    assert.match(help.join('\n'), /^Run the message bus server\./)
    // The prefix links to the clone: the installed command is the one just built.
    assert.equal(realpathSync(join(prefix, 'lib', 'node_modules', 'msgbus')), realpathSync(clone))
  })

  it('man finds every page: with MANPATH, and through PATH alone', function () {
    if (sh('command -v man').status !== 0) this.skip()
    const pages = readdirSync(join(clone, 'man')).filter((name) => name.endsWith('.1'))
    assert.ok(pages.includes('msgbus-serve.1'), pages.join(' '))
    const installed = (page: string) => join(prefix, 'share', 'man', 'man1', page)
    for (const page of pages) {
      const found = ok(`man -w ${quote(page.replace(/\.1$/, ''))}`, {cwd: elsewhere, env: {MANPATH: join(prefix, 'share', 'man')}})
      // man -w names the page it would show with the links resolved: the clone's own page, through the prefix.
      assert.equal(realpathSync(found.stdout.trim()), realpathSync(installed(page)))
      assert.equal(realpathSync(installed(page)), realpathSync(join(clone, 'man', page)))
    }

    // man-db looks for share/man beside each folder of PATH: a prefix whose bin is on PATH needs no MANPATH.
    const derived = ok('man -w msgbus-serve', {cwd: elsewhere, env: {PATH: onPath(), MANPATH: undefined}})
    assert.equal(realpathSync(derived.stdout.trim()), realpathSync(installed('msgbus-serve.1')))
  })

  /** PATH with the prefix's bin first. */
  function onPath(): string {
    return `${join(prefix, 'bin')}${delimiter}${process.env.PATH ?? ''}`
  }
})
