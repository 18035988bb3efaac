// The fast path of `msgbus send`, `msgbus dump` and `msgbus --version`
// (bin/run.js runs them from dist/cli/fast-<id>.cjs, without oclif;
// src/lib/cli/fast-parse.ts):
// it must take a command line exactly as oclif's parser does, or leave it
// to oclif; and the CLI must answer the same either way
// (MSGBUS_NO_FAST_PATH sends every command through oclif).
import assert from 'node:assert/strict'
import {existsSync} from 'node:fs'
import {Command, Flags, Parser, type Interfaces} from '@oclif/core'
import fc from 'fast-check'
import {fastSpecOf} from '../scripts/fast-spec.js'
import Dump from '../src/commands/dump.js'
import Send from '../src/commands/send.js'
import {fastParse, type FastSpec} from '../src/lib/cli/fast-parse.js'
import {BIN, freePort, msgbus, portOf, startBus, stopAll, type RunResult} from './support/harness.js'

const COMMANDS = {send: Send, dump: Dump}

function specOf(id: keyof typeof COMMANDS): FastSpec {
  const spec = fastSpecOf(COMMANDS[id], id, 'msgbus')
  assert.equal(typeof spec, 'object', `${id}: ${String(spec)}`)
  return spec as FastSpec
}

/** oclif's parse of the command line, as the command's this.parse() makes it. */
function oclifParse(id: keyof typeof COMMANDS, argv: string[]): Promise<{args: unknown; argv: unknown; flags: unknown}> {
  return oclifParseOf(COMMANDS[id], argv)
}

async function oclifParseOf(command: Command.Class, argv: string[]): Promise<{args: unknown; argv: unknown; flags: unknown}> {
  const flags: Interfaces.FlagInput = {...command.baseFlags, ...command.flags}
  const parsed = await Parser.parse(argv, {flags, args: command.args, strict: command.strict})
  return {args: parsed.args, argv: parsed.argv, flags: parsed.flags}
}

/** Tokens a command line is drawn from: plain ones, and every kind the fast path must leave to oclif. */
const TOKENS = [
  'foo', 'bar', 'foo', '/', 'a.txt', '-', '--', '', '-1',
  '-m', 'hi', '--message', '-t', 'text/plain', '--type=application/json', '-q', '-v', '--verbose', '--lines', '--no-lines',
  '--url', 'http://127.0.0.1:1', '--url=', '-u', 'ann:pw', '-k', '--cacert', '--buffer', '8k', '12q', '--retry-for', '10s', '0',
  '-h', '--help', '--bogus', '-qv', '-mhi', '-n', '1', '2', '--count=3', '--timeout', '--raw', '-r', '--json', '--save', 'out',
  '--since', 'all', '10m', '--poll', '--reconnect', '--no-reconnect', '--allow-loss', '-s', 'b*', '--quiet=true', '--version',
]

/**
 * `fast` with each time it read off the clock (`--since 10s`: now less 10 s)
 * taken from `oclif` when the two are at most `ms` apart, the time between
 * the two parses (a busy machine puts milliseconds between them); anything
 * else as it was, the same object when nothing in it moved.
 */
function clockAligned(fast: unknown, oclif: unknown, ms: number): unknown {
  if (typeof fast !== 'object' || fast === null || typeof oclif !== 'object' || oclif === null) return fast
  const f = fast as Record<string, unknown>
  const o = oclif as Record<string, unknown>
  if (f.kind === 'time' && o.kind === 'time' && typeof f.time === 'number' && typeof o.time === 'number') {
    return f.time !== o.time && Math.abs(f.time - o.time) <= ms ? {...f, time: o.time} : fast
  }

  if (Object.getPrototypeOf(fast) !== Object.prototype) return fast
  let moved = false
  const aligned = Object.fromEntries(
    Object.entries(f).map(([key, value]) => {
      const next = clockAligned(value, o[key], ms)
      moved ||= next !== value
      return [key, next]
    }),
  )
  return moved ? aligned : fast
}

describe('the fast path of send and dump', function () {
  afterEach(stopAll)

  it('is built, for send and dump, from their own flag definitions', function () {
    for (const id of ['send', 'dump'] as const) {
      const spec = specOf(id)
      assert.deepEqual(spec.flags.map((flag) => flag.name).sort(), Object.keys({...COMMANDS[id].baseFlags, ...COMMANDS[id].flags}).sort())
      assert.ok(existsSync(new URL(`../dist/cli/fast-${id}.cjs`, `file://${BIN}`)), `dist/cli/fast-${id}.cjs (npm run build)`)
    }
  })

  it('leaves to oclif what its spec says it cannot weigh: a required flag missing, a flag set in the environment, help', async function () {
    class Probe extends Command {
      static override flags = {
        help: Flags.help({char: 'h'}),
        name: Flags.string({required: true}),
        level: Flags.integer({env: 'FAST_PATH_TEST_LEVEL', min: 1}),
      }

      async run(): Promise<void> {}
    }

    const spec = fastSpecOf(Probe, 'probe', 'msgbus') as FastSpec
    assert.deepEqual(await fastParse(['--name', 'x', '--level', '2'], spec), await oclifParseOf(Probe, ['--name', 'x', '--level', '2']))
    assert.equal(await fastParse(['--level', '2'], spec), undefined)
    assert.equal(await fastParse(['--name', 'x', '-h'], spec), undefined)
    process.env.FAST_PATH_TEST_LEVEL = '3'
    try {
      assert.equal(await fastParse(['--name', 'x'], spec), undefined)
    } finally {
      delete process.env.FAST_PATH_TEST_LEVEL
    }
  })

  it('takes the plain command lines a shell loop types', async function () {
    const plain: Array<[keyof typeof COMMANDS, string[]]> = [
      ['send', ['foo']],
      ['send', ['foo', '-m', 'hi', '-m', 'there', '-t', 'text/x']],
      ['send', ['http://127.0.0.1:1/msgbus/foo', '-q', '--retry-for', '10s']],
      ['send', ['foo', 'a.txt', 'b.png', '--url=http://x', '-u', 'ann']],
      ['send', ['logs', '--lines', '--buffer', '64k']],
      ['dump', []],
      ['dump', ['foo', '-n', '1', '--json', '--timeout', '5']],
      ['dump', ['foo', '--since', 'all', '--poll', '--no-reconnect', '-t', 'text/*']],
    ]
    for (const [id, argv] of plain) {
      const fast = await fastParse(argv, specOf(id))
      assert.ok(fast, `${id} ${argv.join(' ')}: left to oclif`)
      assert.deepEqual(fast, await oclifParse(id, argv), `${id} ${argv.join(' ')}`)
    }
  })

  it('parses what it takes exactly as oclif does (any command line of the tokens above)', async function () {
    for (const id of ['send', 'dump'] as const) {
      const spec = specOf(id)
      await fc.assert(
        fc.asyncProperty(fc.array(fc.constantFrom(...TOKENS), {maxLength: 7}), async (argv) => {
          const started = Date.now()
          const fast = await fastParse(argv, spec)
          if (fast === undefined) return
          const oclif = await oclifParse(id, argv)
          assert.deepEqual(clockAligned(fast, oclif, Date.now() - started), oclif)
        }),
        {numRuns: 400},
      )
    }
  })

  describe('the CLI answers the same with it and without it (MSGBUS_NO_FAST_PATH)', function () {
    async function both(args: string[], input = ''): Promise<RunResult> {
      const [fast, oclif] = await Promise.all([msgbus(args, {input}), msgbus(args, {input, env: {MSGBUS_NO_FAST_PATH: '1'}})])
      assert.deepEqual({code: fast.code, stdout: fast.stdout, stderr: fast.stderr}, {code: oclif.code, stdout: oclif.stdout, stderr: oclif.stderr}, `msgbus ${args.join(' ')}`)
      return fast
    }

    it('on success: a publish, a poll of what is kept', async function () {
      const server = await startBus()
      const url = `http://127.0.0.1:${portOf(server)}`
      assert.equal((await both(['send', 'foo', '--url', url], 'hi\n')).code, 0)
      assert.equal((await both(['send', 'foo', '-m', 'one', '-m', 'two', '--url', url])).code, 0)
      const polled = await both(['dump', 'foo', '--poll', '--raw', '--url', url])
      assert.equal(polled.code, 0)
      // Each publish ran twice, once on each path.
      assert.deepEqual(polled.stdout.split('\n').sort(), ['', 'hi', 'hi', 'one', 'one', 'two', 'two'])
    })

    it('on failures of the command itself: a refused connection, misused flags, a timeout', async function () {
      const refused = `http://127.0.0.1:${await freePort()}`
      assert.equal((await both(['send', 'foo', '--url', refused], 'hi\n')).code, 1)
      assert.equal((await both(['send', 'foo', '-q', '--url', refused], 'hi\n')).stderr, '')
      assert.equal((await both(['send', 'foo', 'a.txt', '--lines'])).code, 2)
      assert.equal((await both(['send', 'foo', 'a.txt', '-m', 'x'])).code, 2)
      assert.equal((await both(['send', 'foo', 'no-such-file', '--url', refused])).code, 1)
      const server = await startBus()
      assert.equal((await both(['dump', 'foo', '-n', '1', '--timeout', '1', '--url', `http://127.0.0.1:${portOf(server)}`])).code, 1)
    })

    it("on Node's limit on a response head (--max-http-header-size in NODE_OPTIONS), which the bundles read without loading node:http", async function () {
      const server = await startBus()
      const args = ['send', 'foo', '--url', `http://127.0.0.1:${portOf(server)}`]
      const tight = {NODE_OPTIONS: '--max-http-header-size=50'}
      const [fast, oclif] = await Promise.all([msgbus(args, {input: 'hi\n', env: tight}), msgbus(args, {input: 'hi\n', env: {...tight, MSGBUS_NO_FAST_PATH: '1'}})])
      for (const result of [fast, oclif]) assert.deepEqual([result.code, /Headers Overflow/i.test(result.stderr)], [1, true], result.stderr)
      assert.equal((await msgbus(args, {input: 'hi\n', env: {NODE_OPTIONS: '--max-http-header-size=4096'}})).code, 0)
    })

    it('--version (dist/cli/fast---version.cjs): oclif\'s line', async function () {
      for (const args of [['--version'], ['--version', 'send']]) {
        const result = await both(args)
        assert.equal(result.code, 0)
        assert.match(result.stdout, /^msgbus\/\S+ \S+-\S+ node-v\S+\n$/)
      }
    })

    it('on usage errors and help, which it leaves to oclif', async function () {
      for (const args of [
        ['send'],
        ['send', 'foo', '--bogus'],
        ['send', 'foo', '--buffer', '12q'],
        ['send', 'foo', '-t'],
        ['send', 'foo', '--help'],
        ['send', '-h'],
        ['dump', 'a', 'b'],
        ['dump', '-n', '0'],
        ['dump', '--raw', '--json'],
        ['dump', '--since', 'yesterday'],
      ]) {
        const result = await both(args)
        assert.notEqual(result.stdout + result.stderr, '', `msgbus ${args.join(' ')} says something`)
      }
    })
  })
})
