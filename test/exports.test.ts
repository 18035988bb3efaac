// The package as its users import it: dist/ (built by `npm test` first, or
// `npm run build`), reached by the package's name from a consumer folder
// whose node_modules/msgbus links here. `msgbus`, `msgbus/server`,
// `msgbus/client` and `msgbus/protocol` resolve, with their types, and
// `msgbus/server` loads neither undici nor chalk nor oclif.
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import * as client from '../src/lib/client/index.js'
import * as library from '../src/lib/index.js'
import * as protocol from '../src/lib/protocol/index.js'
import * as server from '../src/lib/server/index.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** What `msgbus` exported before the subpaths came: it must go on exporting every one. */
const ROOT_EXPORTS_BEFORE = [
  'BUS_PREFIX', 'Bus', 'BusServer', 'ChannelError', 'ClientError', 'DEFAULT_BASE_URL', 'DEFAULT_TYPE', 'FAN_OUT_SLICE', 'LogLevel',
  'MAX_LIST_CHARS', 'MAX_MEDIA_NAME_CHARS', 'MAX_PATTERNS', 'MAX_PATTERN_CHARS', 'MULTIPART_FRAMINGS', 'MessageIdGenerator',
  'MultipartEncoder', 'MultipartError', 'MultipartParser', 'MultipartStream', 'NdjsonEncoder', 'PatternList', 'PatternListError',
  'PipelinedPublisher', 'RawEncoder', 'SseEncoder', 'Subscription', 'TargetError', 'VERSION', 'boundaryOf', 'channelPath',
  'compareMessageIds', 'compileFilter', 'compilePatternList', 'createBus', 'createEncoders', 'decodeChannel', 'formatSize',
  'isMessageId', 'isTextBody', 'isTextualType', 'makeBoundary', 'parseMediaType', 'parseSize', 'partToMessage', 'publish',
  'publishAll', 'resolveTarget', 'silentLogger', 'streamLogger', 'subscribe', 'toJsonMessage',
]

/** Packages that only the client (undici) or the CLI (oclif, chalk) may load. */
const HEAVY = /[\\/]node_modules[\\/](undici|chalk|@oclif[\\/]core)[\\/]/

/**
 * A module hook for the child: every module resolved (ESM, and CommonJS
 * reached by import) is appended to $MSGBUS_TRACE. The hooks run on their
 * own thread, so they write to a file rather than to the child's memory.
 */
const HOOKS = `import {appendFileSync} from 'node:fs'
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context)
  appendFileSync(process.env.MSGBUS_TRACE, result.url + '\\n')
  return result
}
`

/** Imports $SPEC and prints its export names and every module loaded: traced by the hook, and CommonJS's require.cache (undici's own require()s). */
const CHILD = `import {createRequire} from 'node:module'
import {readFileSync} from 'node:fs'
const loaded = await import(process.env.SPEC)
const cjs = Object.keys(createRequire(import.meta.url).cache)
const traced = readFileSync(process.env.MSGBUS_TRACE, 'utf8').split('\\n').filter(Boolean)
process.stdout.write(JSON.stringify({exports: Object.keys(loaded).sort(), modules: [...traced, ...cjs]}))
`

function runNode(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    // NODE_OPTIONS emptied: the child must not inherit tsx or anything else from mocha.
    execFile(process.execPath, args, {cwd, env: {...process.env, NODE_OPTIONS: '', ...env}, timeout: 60_000}, (error, stdout, stderr) => {
      if (error) reject(new Error(`node ${args.join(' ')}: ${error.message}\n${stdout}${stderr}`))
      else resolve(stdout)
    })
  })
}

describe('the package exports', function () {
  this.timeout(60_000)
  let consumer: string

  before(function () {
    for (const entry of ['index', 'server/index', 'client/index', 'protocol/index']) {
      assert.ok(existsSync(join(ROOT, 'dist', 'lib', `${entry}.js`)), `dist/lib/${entry}.js is missing: run npm run build first`)
    }

    consumer = mkdtempSync(join(tmpdir(), 'msgbus-consumer-'))
    mkdirSync(join(consumer, 'node_modules'))
    symlinkSync(ROOT, join(consumer, 'node_modules', 'msgbus'), 'dir')
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({name: 'consumer', private: true, type: 'module'}))
    writeFileSync(join(consumer, 'hooks.mjs'), HOOKS)
    writeFileSync(join(consumer, 'register.mjs'), `import {register} from 'node:module'\nregister('./hooks.mjs', import.meta.url)\n`)
  })

  after(() => {
    if (consumer) rmSync(consumer, {recursive: true, force: true})
  })

  /** What importing `spec` by the package's name exports, and which modules it loads. */
  async function load(spec: string): Promise<{exports: string[]; modules: string[]}> {
    const trace = join(consumer, `trace-${spec.replace(/\W/g, '-')}.txt`)
    writeFileSync(trace, '')
    const output = await runNode(['--import', './register.mjs', '--input-type=module', '-e', CHILD], consumer, {SPEC: spec, MSGBUS_TRACE: trace})
    return JSON.parse(output) as {exports: string[]; modules: string[]}
  }

  const heavyIn = (modules: string[]) => [...new Set(modules.filter((m) => HEAVY.test(m)).map((m) => HEAVY.exec(m)![1]))].sort()

  it('msgbus/server: createBus and the server core, without undici, chalk or oclif', async () => {
    const {exports, modules} = await load('msgbus/server')
    assert.deepEqual(exports, Object.keys(server).sort())
    assert.ok(exports.includes('createBus') && exports.includes('BusServer') && exports.includes('MsgbusError'))
    assert.ok(!exports.includes('publish'), 'no client in msgbus/server')
    assert.ok(modules.some((m) => m.endsWith('/dist/lib/server/bus-server.js')), 'the trace sees the server load')
    assert.deepEqual(heavyIn(modules), [])
  })

  it('msgbus/protocol: the protocol pieces, without undici, chalk or oclif', async () => {
    const {exports, modules} = await load('msgbus/protocol')
    assert.deepEqual(exports, Object.keys(protocol).sort())
    assert.deepEqual(heavyIn(modules), [])
  })

  it('msgbus/client loads undici (so the trace would see it in msgbus/server), but not chalk or oclif', async () => {
    const {exports, modules} = await load('msgbus/client')
    assert.deepEqual(exports, Object.keys(client).sort())
    assert.deepEqual(heavyIn(modules), ['undici'])
  })

  it('msgbus exports all it did before, and all of the three parts', async () => {
    const {exports, modules} = await load('msgbus')
    assert.deepEqual(exports, Object.keys(library).sort())
    for (const name of ROOT_EXPORTS_BEFORE) assert.ok(exports.includes(name), `msgbus no longer exports ${name}`)
    for (const name of [...Object.keys(server), ...Object.keys(client), ...Object.keys(protocol)]) assert.ok(exports.includes(name), `msgbus does not export ${name}`)
    // streamLogger colours with chalk: `msgbus` loads it, `msgbus/server` does not export it.
    assert.deepEqual(heavyIn(modules), ['chalk', 'undici'])
  })

  it('each entry has its types for a node16 consumer (tsc)', async () => {
    writeFileSync(
      join(consumer, 'consumer.ts'),
      `import {createBus, LogLevel, MsgbusError, type BusServer, type BusServerOptions, type MsgbusErrorCode} from 'msgbus/server'
import {publish, ClientError, type Published} from 'msgbus/client'
import {compilePatternList, ChannelError, type Matcher} from 'msgbus/protocol'
import * as all from 'msgbus'
// @ts-expect-error: the client is not part of msgbus/server
import type {publish as notHere} from 'msgbus/server'

const options: BusServerOptions = {port: 0, logger: all.streamLogger(LogLevel.Always)}
export const server: BusServer = createBus(options)
export const published: () => Promise<Published> = () => publish('foo', 'hi')
export const matcher: Matcher = compilePatternList('a*')
export const code: MsgbusErrorCode = new ChannelError('x').code
export const status: number | undefined = new ClientError('x', 404).status
export const base: MsgbusError = new all.PatternListError('x')
export const same: typeof all.createBus = createBus
// @ts-expect-error: not a code
export const wrong: MsgbusErrorCode = 'ERR_MSGBUS_NO_SUCH_CODE'
`,
    )
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'node16',
          moduleResolution: 'node16',
          target: 'es2022',
          lib: ['es2023'],
          strict: true,
          noEmit: true,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
          // The dependencies' .d.ts unchecked: some 4 s instead of 16 (ours are tsc's own output).
          skipLibCheck: true,
        },
        files: ['consumer.ts'],
      }),
    )
    await runNode([join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], consumer)
  })

  it("README's table lists every error code", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    for (const code of library.MSGBUS_ERROR_CODES) assert.match(readme, new RegExp(`^\\| \`${code}\` \\|`, 'm'), `${code} is not in README's table`)
  })
})
