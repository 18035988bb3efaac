// Options of `msgbus serve` from the environment (MSGBUS_<FLAG>) and from a
// TOML file (--config): flag beats environment beats file beats default.
import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import {BIN, ServeProcess, request, run, tempFolder} from './support/harness.js'

describe('serve configuration: environment and --config', function () {
  this.timeout(30_000)
  const inTemp = tempFolder('msgbus-config-')
  const servers: ServeProcess[] = []
  afterEach(async () => {
    await Promise.all(servers.map((server) => server.stop()))
    servers.length = 0
  })

  function config(name: string, text: string): string {
    const path = inTemp(name)
    writeFileSync(path, text)
    return path
  }

  async function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServeProcess> {
    const server = await ServeProcess.start(['--address', '127.0.0.1', ...args], env)
    servers.push(server)
    return server
  }

  it('an environment variable sets an option; a list from the environment is split at commas like the flag', async () => {
    const server = await serve(['--port', '0'], {MSGBUS_MAX_MESSAGE_SIZE: '1k', MSGBUS_CORS: 'https://a.example,https://b.example', MSGBUS_HISTORY_DIR: inTemp('history')})
    assert.match(server.stderr, /protections .*cors=https:\/\/a\.example,https:\/\/b\.example .*message=1KiB .*history=\S+ on .*history/)
    const reply = await request(`http://127.0.0.1:${server.port()}/msgbus/x`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: 'x'.repeat(2000)})
    assert.equal(reply.status, 413)
  })

  it('a config file sets options, by their long flags, with sizes, durations and lists as on the command line', async () => {
    const file = config('serve.toml', ['# msgbus serve', 'port = 0', 'max-message-size = "2k"', 'history-age = "2h"', 'cors = ["https://a.example"]', 'rate-limit = 7', ''].join('\n'))
    const server = await serve(['--config', file])
    assert.match(server.stderr, /protections .*cors=https:\/\/a\.example rate-limit=7\/s .*message=2KiB .*history=10000\/64MiB\/2h\b/)
  })

  it('a flag beats the environment, which beats the file, which beats the default', async () => {
    const file = config('layers.toml', 'port = 0\nrate-limit = 1\nmax-channels = 2\nmax-subscribers = 3\n')
    const server = await serve(['--rate-limit', '10', '--config', file], {MSGBUS_RATE_LIMIT: '20', MSGBUS_MAX_CHANNELS: '30'})
    // rate-limit: flag (10) over env (20) and file (1); channels: env (30) over file (2); subscribers: file (3) over default (off).
    assert.match(server.stderr, /rate-limit=10\/s .*subscribers=3 channels=30 /)
  })

  it('MSGBUS_CONFIG names the file', async () => {
    const file = config('by-env.toml', 'port = 0\nmax-subscribers = 5\n')
    const server = await serve([], {MSGBUS_CONFIG: file})
    assert.match(server.stderr, /subscribers=5 /)
  })

  describe('what is wrong is one line naming the file, the key and the reason, and exit 2', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['an unknown key', 'prot = 8080\n', /^msgbus serve: \S+bad\.toml: prot: not an option of msgbus serve/],
      ['a bad integer', 'port = "eighty"\n', /^msgbus serve: \S+bad\.toml: port: Expected an integer but received: eighty$/],
      ['a value out of range', 'port = 70000\n', /^msgbus serve: \S+bad\.toml: port: .*70000/],
      ['a bad size', 'max-message-size = "lots"\n', /^msgbus serve: \S+bad\.toml: max-message-size: not a size: "lots"/],
      ['a value not among the choices', 'slow-policy = "panic"\n', /^msgbus serve: \S+bad\.toml: slow-policy: .*disconnect, drop/],
      ['a list for a single value', 'port = [1, 2]\n', /^msgbus serve: \S+bad\.toml: port: a list where one value is expected$/],
      ['an action', 'hash-password = true\n', /^msgbus serve: \S+bad\.toml: hash-password: not an option/],
      ['a key without what it needs', 'key = "k.pem"\n', /^msgbus serve: \S+bad\.toml: key: needs cert too/],
      ['TOML that does not parse', 'port = \n', /^msgbus serve: \S+bad\.toml:1:\d+: not TOML: /],
    ]
    for (const [what, text, expected] of cases) {
      it(what, async () => {
        const file = config('bad.toml', text)
        const result = await run(process.execPath, [BIN, 'serve', '--config', file])
        assert.equal(result.code, 2, result.stderr)
        assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
        assert.match(result.stderr.trim(), expected)
      })
    }

    it('a config file that is not there', async () => {
      const result = await run(process.execPath, [BIN, 'serve', '--config', inTemp('nowhere.toml')])
      assert.equal(result.code, 2, result.stderr)
      assert.match(result.stderr.trim(), /^msgbus serve: cannot read config file \S+nowhere\.toml: no such file$/)
    })

    it('a bad value from the environment names the variable, not a flag', async () => {
      const result = await run(process.execPath, [BIN, 'serve'], {env: {MSGBUS_PORT: 'eighty'}})
      assert.equal(result.code, 2, result.stderr)
      assert.match(result.stderr.trim(), /^msgbus serve: \$MSGBUS_PORT: Expected an integer but received: eighty/)
    })

    it('--acl and a secret from the file: the message names where each came from, never the secret', async () => {
      const file = config('both.toml', 'secret = "hunter2"\n')
      const result = await run(process.execPath, [BIN, 'serve', '--acl', inTemp('acl'), '--config', file])
      assert.equal(result.code, 2, result.stderr)
      assert.match(result.stderr, /--acl and secret in \S+both\.toml cannot be used together/)
      assert.ok(!result.stderr.includes('hunter2'))
    })
  })
})
