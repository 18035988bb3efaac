// What a user meets first, with the built CLI: -h is help everywhere, shell
// completion works, test-pub says at once what it is doing and how fast it
// goes, the 2007 tools' flags mean what they meant, and counts read "1 msg".
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {BusServer} from '../src/lib/index.js'
import {msgbus, MsgbusProcess, startBus, stopAll} from './support/harness.js'

/** The commands `msgbus --help` lists, the plugins' (help, autocomplete) included. */
async function listedCommands(): Promise<string[]> {
  const help = await msgbus(['--help'])
  assert.equal(help.code, 0, help.stderr)
  const section = help.stdout.slice(help.stdout.indexOf('\nCOMMANDS\n'))
  return [...section.matchAll(/^ {2}(\S+)/gm)].map((match) => match[1])
}

describe('the CLI, as a user first meets it', function () {
  this.timeout(30_000)
  let server: BusServer

  before(async () => {
    server = await startBus()
  })

  after(async () => {
    MsgbusProcess.killAll()
    await stopAll()
  })

  describe('-h', () => {
    it('is --help for every command, the plugins\' too, and for msgbus itself', async () => {
      const commands = await listedCommands()
      for (const name of ['autocomplete', 'dump', 'help', 'send', 'serve', 'test-pub', 'test-sub']) assert.ok(commands.includes(name), `${name} is not listed: ${commands.join(' ')}`)
      const root = await msgbus(['-h'])
      assert.equal(root.code, 0, root.stderr)
      assert.equal(root.stdout, (await msgbus(['--help'])).stdout)
      const runs = await Promise.all(commands.map(async (command) => ({command, short: await msgbus([command, '-h']), long: await msgbus([command, '--help'])})))
      for (const {command, short, long} of runs) {
        assert.equal(short.code, 0, `${command} -h: ${short.stderr}`)
        assert.equal(short.stdout, long.stdout, `${command}: -h is not --help`)
        assert.match(short.stdout, /\nUSAGE\n/, command)
        // msgbus's own commands list it with their flags.
        if (!['autocomplete', 'help'].includes(command)) assert.match(short.stdout, /^ {2}-h, --help +Show the help and exit\.$/m, command)
      }

      // Defaults in the units a user types, as on the man page.
      const serve = runs.find((run) => run.command === 'serve')!.short.stdout
      assert.match(serve, /--max-message-size=<size>\s+\[default: 8MiB, env: MSGBUS_MAX_MESSAGE_SIZE\] Largest message body\./)
      assert.doesNotMatch(serve, /8388608/)
    })

    it('wins wherever it is on the line', async () => {
      // Not a file named -h, not a message sent: the help.
      const send = await msgbus(['send', 'foo', '-h', '--url', server.url()], {input: 'not sent\n'})
      assert.equal(send.code, 0, send.stderr)
      assert.match(send.stdout, /^Publish a message/)
      assert.equal(server.counters().published, 0)
    })
  })

  describe('shell completion', () => {
    let cache = ''
    before(() => {
      cache = mkdtempSync(join(tmpdir(), 'msgbus-completion-'))
    })

    after(() => rmSync(cache, {recursive: true, force: true}))

    it('`msgbus autocomplete bash` sets up a script that completes commands and each command\'s flags', async function () {
      if (spawnSync('sh', ['-c', 'command -v bash'], {stdio: 'ignore'}).status !== 0) this.skip()
      const env = {XDG_CACHE_HOME: cache}
      const instructions = await msgbus(['autocomplete', 'bash'], {env})
      assert.equal(instructions.code, 0, instructions.stderr)
      assert.match(instructions.stdout, /msgbus autocomplete script bash/)
      const setup = await msgbus(['autocomplete', 'script', 'bash'], {env})
      assert.equal(setup.code, 0, setup.stderr)

      // What the instructions add to ~/.bashrc, then a <TAB> at three places, as bash's completion calls the function.
      const complete = (words: string[]) =>
        [`COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`, `COMP_CWORD=${words.length - 1}`, '_msgbus_autocomplete', 'echo "${COMPREPLY[*]}"'].join('; ')
      const script = [
        setup.stdout,
        'complete -p msgbus',
        complete(['msgbus', 'se']),
        complete(['msgbus', 'test-pub', '--ra']),
        complete(['msgbus', 'serve', '--history-d']),
      ].join('\n')
      const bash = spawnSync('bash', ['--norc', '--noprofile', '-c', script], {env: {...process.env, ...env}, encoding: 'utf8'})
      assert.equal(bash.status, 0, bash.stderr)
      const [registered, commands, rate, historyDir] = bash.stdout.trimEnd().split('\n')
      assert.match(registered, /^complete .*-F _msgbus_autocomplete msgbus$/)
      assert.deepEqual(commands.split(' ').sort(), ['send', 'serve'])
      assert.equal(rate, '--rate')
      assert.equal(historyDir, '--history-dir')
    })
  })

  describe('test-pub', () => {
    it('without --rate: says first that it floods, then reports within a second, long before --interval', async () => {
      // -d 3 with the default --interval of 5 s: interval reports alone would print none.
      const pub = new MsgbusProcess(['test-pub', '--url', server.url(), '-c', 'polish-flood', '-d', '3'])
      const result = await pub.exit(30_000)
      assert.equal(result.code, 0, result.stderr)
      const lines = result.stderr.trimEnd().split('\n')
      assert.equal(lines[0], 'publishing as fast as the server takes them (no --rate; -r N sends N a second) over 1 connection, until 3 s; a report every 5 s')
      assert.ok(lines.length >= 2, `no progress line: ${result.stderr}`)
      for (const line of lines.slice(1)) assert.match(line, /^[\d.]+ msg\/s \| published \d+ msgs?, \d+ errors?$/)
      assert.match(result.stdout, /^total: published \d+ msgs?, 0 errors, [\d.]+ msg\/s over [\d.]+ s \| cpu [\d.]+ s\n$/)
    })

    it('with --rate: says the rate; one message is "1 msg"', async () => {
      const result = await msgbus(['test-pub', '--url', server.url(), '-c', 'polish-paced', '-r', '10', '--count', '1'])
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stderr, /^publishing 10 msg\/s over 1 connection, until 1 msg; a report every 5 s\n/)
      assert.match(result.stdout, /^total: published 1 msg, 0 errors, /)
    })
  })

  describe('the flags of the 2007 test-pub and test-sub', () => {
    it('-l ADDRESS -p PORT name the server, as --url does', async () => {
      const {port, address} = server.addresses!.http
      const before = server.counters().published
      const result = await msgbus(['test-pub', '-l', address, '-p', String(port), '-c', 'polish-2007', '--count', '3'])
      assert.equal(result.code, 0, result.stderr)
      assert.equal(server.counters().published - before, 3)
    })

    it('-s is SSL, as in 2007: test-sub -s speaks HTTPS (to port 4444 unless -p), not a sender filter', async () => {
      const {port} = server.addresses!.http
      // HTTPS to a plain HTTP port fails the TLS handshake: the connection fails, the run exits 1.
      const result = await msgbus(['test-sub', '-s', '-p', String(port), '-d', '1', '--json'])
      assert.equal(result.code, 1, result.stdout)
      assert.match(result.stderr, /1 connection failed/)
      const conflict = await msgbus(['test-sub', '-s', '--url', server.url(), '-d', '1'])
      assert.equal(conflict.code, 2, conflict.stderr)
    })
  })
})
