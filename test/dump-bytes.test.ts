// Bodies come out as the bytes that went in (issue 15, point 4): `dump --raw`
// and `?format=raw` add a newline only after text; `dump --save DIR` writes
// one exact file per message; and NO_COLOR is honoured on a terminal.
import assert from 'node:assert/strict'
import {readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {BodySaver, extensionOf} from '../src/lib/cli/save.js'
import type {ReceivedMessage} from '../src/lib/client/message.js'
import {BIN, curl, msgbus, publish, run, startBus, stopAll, tempFolder} from './support/harness.js'

/** A picture's first bytes, then every byte value once: no trailing newline, a CR LF and a NUL inside. */
const PICTURE = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from(Array.from({length: 256}, (_, i) => i))])

describe('msgbus dump: exact bytes', function () {
  this.timeout(30_000)
  const inTemp = tempFolder('msgbus-dump-bytes-')

  after(() => stopAll())

  it('a PNG comes out byte for byte from `dump --raw -n 1 > file`, `curl ?format=raw` and `dump --save DIR`; text keeps its newline', async () => {
    const server = await startBus()
    const picture = (await publish(server, 'pics', PICTURE, 'image/png')).headers['msgbus-id'] as string
    const text = (await publish(server, 'pics', 'a line', 'text/plain; charset=utf-8')).headers['msgbus-id'] as string
    const unknown = (await publish(server, 'pics', 'opaque\n', 'application/x-unheard-of')).headers['msgbus-id'] as string
    const file = inTemp('out.png')
    const shell = await run('sh', ['-c', `"${process.execPath}" "${BIN}" dump pics --url ${server.url()} --since all --raw -n 1 > "${file}"`])
    assert.equal(shell.code, 0, shell.stderr)
    assert.ok(readFileSync(file).equals(PICTURE), `dump --raw wrote ${readFileSync(file).length} bytes for ${PICTURE.length}`)

    const curled = inTemp('curl.raw')
    const fetched = await curl(['-o', curled, `${server.url()}/msgbus/pics?format=raw&since=all&poll=1`])
    assert.equal(fetched.code, 0, fetched.stderr)
    assert.ok(readFileSync(curled).equals(Buffer.concat([PICTURE, Buffer.from('a line\nopaque\n')])), 'the picture as it is; a newline after the text only')

    const dir = inTemp('saved')
    const saved = await msgbus(['dump', 'pics', '--url', server.url(), '--since', 'all', '--poll', '--save', dir])
    assert.equal(saved.code, 0, saved.stderr)
    // One line per file on stdout, its path, so the files can be piped on (xargs, a loop).
    assert.deepEqual(saved.stdout.split('\n').slice(0, -1), [`${picture}.png`, `${text}.txt`, `${unknown}.bin`].map((name) => join(dir, name)))
    assert.deepEqual(readdirSync(dir).sort(), [`${picture}.png`, `${text}.txt`, `${unknown}.bin`].sort(), 'nothing else left in the folder')
    assert.ok(readFileSync(join(dir, `${picture}.png`)).equals(PICTURE))
    assert.equal(readFileSync(join(dir, `${text}.txt`), 'utf8'), 'a line')
    assert.equal(readFileSync(join(dir, `${unknown}.bin`), 'utf8'), 'opaque\n')
  })

  it('--save: an id that is not a message id never becomes a path; messages without one are numbered, never overwriting a file', async () => {
    const dir = inTemp('hostile')
    const saver = new BodySaver(dir)
    const message = (id: string | undefined, body: string): ReceivedMessage => ({id, channel: 'c', type: 'text/plain', body: Buffer.from(body), headers: {}, time: Date.now()})
    await saver.save(message('1796224925405-0', 'first'))
    writeFileSync(join(dir, '1.txt'), 'there before')
    const paths = [await saver.save(message('../../escape', 'hostile')), await saver.save(message(undefined, 'no id'))]
    assert.deepEqual(paths, [join(dir, '2.txt'), join(dir, '3.txt')])
    assert.deepEqual(readdirSync(dir).sort(), ['1.txt', '1796224925405-0.txt', '2.txt', '3.txt'])
    assert.equal(readFileSync(join(dir, '1.txt'), 'utf8'), 'there before')
    assert.equal(readFileSync(join(dir, '2.txt'), 'utf8'), 'hostile')
    assert.deepEqual(['image/png', 'text/plain; charset=utf-8', 'application/json', 'application/octet-stream', 'x/../..', ''].map(extensionOf), ['png', 'txt', 'json', 'bin', 'bin', 'bin'])
  })

  it('on a terminal: colours, unless NO_COLOR is set', async function () {
    const script = await run('sh', ['-c', 'command -v script'])
    if (script.code !== 0) this.skip()
    const server = await startBus()
    await publish(server, 'tty', 'hello')
    const onTerminal = (noColor: string) =>
      run('script', ['-qec', `"${process.execPath}" "${BIN}" dump tty --url ${server.url()} --since all --poll`, '/dev/null'], {
        // CI (set by CI runners) makes chalk colour nothing; a user's terminal has none of these.
        env: {NO_COLOR: noColor, FORCE_COLOR: undefined, CI: undefined, TERM: 'xterm-256color'},
      })
    const [coloured, plain] = await Promise.all([onTerminal(''), onTerminal('1')])
    // eslint-disable-next-line no-control-regex
    for (const result of [coloured, plain]) assert.match(result.stdout.replace(/\x1b\[[\d;]*m/g, ''), / tty text\/plain - 5 hello\r\n/, result.stderr)
    // eslint-disable-next-line no-control-regex
    assert.match(coloured.stdout, /\x1b\[/, 'a terminal gets colours')
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(plain.stdout, /\x1b\[/, 'NO_COLOR=1: none')
  })

  it('--raw on a terminal names a binary body instead of writing its bytes (which could drive the terminal); text is written', async function () {
    const script = await run('sh', ['-c', 'command -v script'])
    if (script.code !== 0) this.skip()
    const server = await startBus()
    await publish(server, 'ttyraw', Buffer.concat([PICTURE, Buffer.from('\x1b]0;pwned\x07')]), 'image/png')
    await publish(server, 'ttyraw', 'a line', 'text/plain')
    const result = await run('script', ['-qec', `"${process.execPath}" "${BIN}" dump ttyraw --url ${server.url()} --since all --poll --raw`, '/dev/null'], {env: {TERM: 'xterm-256color'}})
    assert.equal(result.code, 0, result.stderr)
    // The terminal also shows dump's status lines (stderr is the terminal too).
    assert.ok(result.stdout.includes(`\n(a image/png body of ${PICTURE.length + 10} bytes, not written to a terminal: redirect stdout, or use --save DIR)\r\na line\r\n`), result.stdout)
    assert.ok(!result.stdout.includes('pwned') && !result.stdout.includes('\x89PNG'), 'none of the body reached the terminal')
  })
})
