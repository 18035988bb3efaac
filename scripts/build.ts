/**
 * Bundles the CLI for a fast start (run by `npm run build`, after tsc):
 *
 *   node --import tsx/esm scripts/build.ts
 *
 * writes dist/cli/index.cjs, one esbuild bundle of oclif and every command,
 * and dist/cli/index.cjs.cache, V8's compiled code for it. bin/run.js loads
 * the two and hands oclif the bundle's COMMANDS through oclif's explicit
 * command strategy. tsc's output (the library, with .d.ts files, and
 * dist/commands) is left as it is; bin/dev.js and scripts/man.ts keep
 * running the sources through tsx, with package.json's pattern strategy.
 *
 * Where a start-up's time went, and what this does about it (Node 20):
 * - Resolving, reading and compiling ~200 modules of oclif and its
 *   dependencies: one bundled file, and V8's code cache for it (Node 20 has
 *   no compile cache of its own). The cache is made by running the new
 *   bundle once, `echo hi | msgbus send` against a stand-in server (see
 *   writeCodeCache), with every lazy module loaded too. V8 rejects a cache
 *   made by another Node or V8, and then compiles as usual.
 * - Loading every command to run one: the bundle's COMMANDS are stand-ins
 *   made from each command's oclif metadata (read here from src/, as
 *   scripts/man.ts reads it: summary, flags, args, examples...), so listings
 *   and --help load no command, and running one loads that command's
 *   modules only, then runs the real class. A command whose help is dynamic
 *   (a flag with a defaultHelp function) is bundled as it is.
 * - The plugins of package.json (@oclif/plugin-help, and
 *   @oclif/plugin-autocomplete for shell completion), loaded from
 *   node_modules as plugins: their commands are bundled like the others
 *   (bin/run.js then loads no plugin; BUNDLED_PLUGINS names them).
 * - undici: only the commands that use it load it; the build fails if the
 *   start-up path (oclif, the stand-ins) imports it statically. Parts of
 *   undici and oclif that cost time and that msgbus never uses are patched
 *   out of the bundle (PATCHES).
 * - oclif itself, for the commands a shell loop calls (issue 17: `echo hi |
 *   msgbus send foo` took 2.6× `node -e ''`): `send` and `dump` (FAST_COMMANDS)
 *   and `--version` get bundles of their own, dist/cli/fast-<id>.cjs with
 *   their code caches, holding the command's run function and what it loads,
 *   without oclif, and only the part of undici the client uses
 *   (slimUndiciSource). Their parser's view of the flags is read here off the
 *   command's own definitions (scripts/fast-spec.ts); bin/run.js tries the
 *   fast bundle first, and it hands anything it does not take exactly to
 *   oclif (src/lib/cli/fast-parse.ts).
 *
 * The list of commands is never written by hand: oclif finds them in
 * src/commands (as bin/dev.js does), and the generated entry module goes to
 * build/cli.ts (git-ignored).
 */
import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {createHash} from 'node:crypto'
import {mkdir, readdir, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {join, relative, sep} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {Config, Plugin, settings, type Command} from '@oclif/core'
import {build, type Metafile, type OutputFile, type Plugin as EsbuildPlugin} from 'esbuild'
import type {FastSpec} from '../src/lib/cli/fast-parse.js'
import {fastSpecOf} from './fast-spec.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BUILD_DIR = join(ROOT, 'build')
const ENTRY = join(BUILD_DIR, 'cli.ts')
const OUT_DIR = join(ROOT, 'dist', 'cli')
const BUNDLE = join(OUT_DIR, 'index.cjs')
/** Set (to anything) in the environment, bin/run.js runs every command through oclif. */
const NO_FAST_PATH = 'MSGBUS_NO_FAST_PATH'

/** Packages that the start-up path (oclif and the stand-ins) must not load: only the commands that use them do. */
const LAZY_ONLY = ['undici']

/**
 * Hooks (of msgbus or a bundled plugin) that never fire in msgbus, so they
 * may be left out, and the fast path may run without them: @oclif/plugin-plugins (not a dependency) is what fires them
 * (@oclif/plugin-autocomplete refreshes its cache there).
 */
const NEVER_FIRED = new Set(['plugins:postinstall', 'plugins:postuninstall'])

/** Manifest keys that oclif sets itself when it loads a command. */
const NOT_METADATA = new Set(['id', 'pluginAlias', 'pluginName', 'pluginType', 'relativePath', 'isESM', 'hasDynamicHelp', 'aliasPermutations', 'permutations'])

/**
 * Commands a shell loop calls, run without oclif when their command line is
 * plain (src/lib/cli/fast-cli.ts): each gets a bundle of its own,
 * dist/cli/fast-<id>.cjs, with its code cache, holding the command's run
 * function (shared with its oclif class) and what it loads, and a FastSpec
 * read off the command's flag definitions (scripts/fast-spec.ts). bin/run.js
 * tries it first and falls back to oclif for anything else.
 */
const FAST_COMMANDS: Record<string, FastCommand> = {
  send: {module: 'src/lib/cli/send-command.ts', run: 'runSend', warmUp: (url) => ({argv: ['send', 'code-cache', '--url', url], input: 'hi\n', status: 0})},
  // The stand-in answers a subscription 404: the request, the answer and the failure's report are compiled.
  dump: {module: 'src/lib/cli/dump-command.ts', run: 'runDump', warmUp: (url) => ({argv: ['dump', 'code-cache', '--url', url, '--no-reconnect'], input: '', status: 1})},
}

interface FastCommand {
  /** The module (from the root) that exports the command's run function, and its name. */
  module: string
  run: string
  /** The run that makes its bundle's code cache, against writeCodeCache's stand-in server at `url`, and the exit status it ends with. */
  warmUp(url: string): {argv: string[]; input: string; status: number}
}

export interface CommandEntry {
  /** oclif's id, topics joined with `:`. */
  id: string
  /** Absolute path of the source file. */
  file: string
  /** oclif's manifest entry for the command, less what oclif sets itself. */
  metadata: Record<string, unknown>
  /** A flag computes its help at run time: the command is bundled as it is, not as a stand-in. */
  dynamicHelp: boolean
  /** The plugin it comes from, if not the project. */
  plugin?: string
  /** For FAST_COMMANDS: its fast path's spec, or why it has none. */
  fast?: FastSpec | string
}

/** Marks a defaultHelp function that returns the same text whatever the context (src/lib/cli/option-flags.ts, constantHelp). */
const CONSTANT_HELP = Symbol.for('msgbus.constantHelp')

/**
 * Whether a command's help is computed at run time: a flag with a
 * defaultHelp function that is not marked constant. oclif's manifest says
 * only that there is such a function, so the command is loaded to look.
 */
async function hasDynamicHelp(plugin: Plugin, id: string, cached: Command.Cached): Promise<boolean> {
  if (!cached.hasDynamicHelp) return false
  const command = await plugin.findCommand(id, {must: true})
  const flags = Object.values({...command.baseFlags, ...command.flags}) as Array<{defaultHelp?: unknown}>
  return flags.some((flag) => typeof flag.defaultHelp === 'function' && !(flag.defaultHelp as unknown as Record<symbol, unknown>)[CONSTANT_HELP])
}

/** A manifest entry as metadata for a stand-in: without what oclif sets itself when it loads a command. */
async function entryOf(id: string, cached: Command.Cached, plugin: Plugin): Promise<CommandEntry> {
  const relativePath = cached.relativePath
  if (!relativePath) throw new Error(`oclif gave no file for command ${id}`)
  const metadata = Object.fromEntries(Object.entries(cached).filter(([key, value]) => !NOT_METADATA.has(key) && value !== undefined))
  const fast = plugin.isRoot && id in FAST_COMMANDS ? fastSpecOf(await plugin.findCommand(id, {must: true}), id, plugin.pjson.oclif.bin ?? plugin.name) : undefined
  return {id, file: join(plugin.root, ...relativePath), metadata, dynamicHelp: await hasDynamicHelp(plugin, id, cached), plugin: plugin.isRoot ? undefined : plugin.name, fast}
}

/**
 * The commands as oclif finds them, with their metadata (what `msgbus
 * --help` and `msgbus COMMAND --help` show): the project's, from src/
 * through tsx as in bin/dev.js, and those of the plugins in package.json
 * (@oclif/plugin-help's `help`), which go into the bundle too, so that
 * nothing is loaded from node_modules at run time.
 */
export async function readCommands(root = ROOT): Promise<{commands: CommandEntry[]; plugins: string[]; hooks: string[]}> {
  settings.enableAutoTranspile = true
  const rootPlugin = new Plugin({root, isRoot: true, ignoreManifest: true, errorOnManifestCreate: true})
  await rootPlugin.load()
  const plugins: Plugin[] = []
  const firing = (plugin: Plugin) => Object.keys(plugin.hooks).filter((event) => !NEVER_FIRED.has(event))
  for (const name of (rootPlugin.pjson.oclif.plugins ?? []) as string[]) {
    const plugin = new Plugin({name, root, type: 'core', errorOnManifestCreate: true})
    await plugin.load()
    const hooks = firing(plugin)
    if (hooks.length > 0) throw new Error(`plugin ${name} has hooks (${hooks.join(', ')}), which scripts/build.ts cannot bundle`)
    plugins.push(plugin)
  }

  // Config.load checks them all the way the CLI will see them (ids, topics, clashes).
  await Config.load({root, plugins: new Map([rootPlugin, ...plugins].map((p) => [p.name, p]))})
  const commands = (
    await Promise.all([rootPlugin, ...plugins].flatMap((plugin) => Object.entries(plugin.manifest.commands).map(([id, cached]) => entryOf(id, cached, plugin))))
  ).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return {commands, plugins: plugins.map((p) => p.name), hooks: firing(rootPlugin)}
}

/** A module specifier for `file`, relative to the folder `from`, in the .js form TypeScript sources use. */
function specifier(file: string, from: string): string {
  const rel = relative(from, file).split(sep).join('/').replace(/\.(?:[cm]?ts|tsx)$/, '.js')
  return JSON.stringify(rel.startsWith('.') ? rel : `./${rel}`)
}

/** The entry module: @oclif/core's API for bin/run.js, COMMANDS (id → command class), and warm() for the code cache. */
export function entrySource(commands: CommandEntry[], plugins: string[], lazyModules: string[], from = BUILD_DIR): string {
  const shown = (file: string) => JSON.stringify(relative(ROOT, file).split(sep).join('/'))
  const eager = commands.filter((c) => c.dynamicHelp)
  const eagerImports = eager.map((c) => `import * as eager${commands.indexOf(c)} from ${specifier(c.file, from)}\n`).join('')
  return `// Generated by scripts/build.ts from the commands in src/commands: do not edit.
import {Command, type Config} from '@oclif/core'
${eagerImports}
export {execute, settings} from '@oclif/core'

/** The plugins of package.json whose commands are in COMMANDS: bin/run.js does not load them. */
export const BUNDLED_PLUGINS: string[] = ${JSON.stringify(plugins)}

type CommandClass = typeof Command & {run(argv?: string[], config?: Config): Promise<unknown>}

/** The command class of a module, found as oclif finds it: the default export, else the first export with a run(). */
function commandOf(module: Record<string, unknown>, file: string): CommandClass {
  const isCommand = (value: unknown) => typeof (value as {run?: unknown} | undefined)?.run === 'function'
  const found = isCommand(module.default) ? module.default : Object.values(module).find(isCommand)
  if (!found) throw new Error(\`\${file}: no command class exported\`)
  return found as CommandClass
}

/**
 * A stand-in for a command: its oclif metadata (for listings and --help),
 * and a run() that imports the real command and runs it.
 */
function lazy(metadata: Record<string, unknown>, load: () => Promise<Record<string, unknown>>, file: string): CommandClass {
  class Lazy extends Command {
    static override async run(argv?: string[], config?: Config): Promise<unknown> {
      const real = commandOf(await load(), file)
      // What oclif sets on the class it loads (Plugin.findCommand).
      real.id = this.id
      real.plugin = this.plugin
      return real.run(argv, config)
    }

    async run(): Promise<unknown> {
      throw new Error(\`\${this.id}: stand-in command run directly\`)
    }
  }

  return Object.assign(Lazy, metadata) as unknown as CommandClass
}

export const COMMANDS: Record<string, CommandClass> = {
${commands
  .map((c, i) =>
    c.dynamicHelp
      ? `  ${JSON.stringify(c.id)}: commandOf(eager${i}, ${shown(c.file)}),`
      : `  ${JSON.stringify(c.id)}: lazy(${JSON.stringify(c.metadata)}, () => import(${specifier(c.file, from)}), ${shown(c.file)}),`,
  )
  .join('\n')}
}

/** Loads every module that is otherwise loaded on demand, so that the code cache holds their code too. */
export async function warm(): Promise<void> {
  await Promise.all([
${[...commands.filter((c) => !c.dynamicHelp).map((c) => c.file), ...lazyModules].map((file) => `    import(${specifier(file, from)}),`).join('\n')}
  ])
}
`
}

/** The entry module of a command's fast bundle: run(argv) (fast-cli.ts's fastRun with the command's spec and run function), and warm(). */
function fastEntrySource(spec: FastSpec, command: {module: string; run: string}, lazyModules: string[], from = BUILD_DIR): string {
  return `// Generated by scripts/build.ts from src/commands/${spec.id}.ts: do not edit.
import {fastRun} from ${specifier(join(ROOT, 'src/lib/cli/fast-cli.ts'), from)}
import type {FastSpec} from ${specifier(join(ROOT, 'src/lib/cli/fast-parse.ts'), from)}
import {${command.run}} from ${specifier(join(ROOT, command.module), from)}

const SPEC: FastSpec = ${JSON.stringify(spec)}

/** The exit status, or undefined when the command line is oclif's to handle (nothing done then). */
export function run(argv: string[]): Promise<number | undefined> {
  return fastRun(argv, SPEC, ${command.run})
}

/** Loads every module that is otherwise loaded on demand, so that the code cache holds their code too. */
export async function warm(): Promise<void> {
  await Promise.all([
${lazyModules.map((file) => `    import(${specifier(file, from)}),`).join('\n')}
  ])
}
`
}

/** Edits to one file of a dependency: each `text` is replaced by its `by`. */
interface Patch {
  /** The dependency's file. */
  file: RegExp
  edits: Array<{text: string; by: string}>
  /** What is lost when the file has changed and a text is not found. */
  saves: string
}

/** A file of a package under node_modules, as esbuild's filter matches its path. */
function dependencyFile(path: string): RegExp {
  return new RegExp(`[\\\\/]node_modules[\\\\/]${path.split('/').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\\\/]')}$`)
}

/**
 * Small edits to dependencies, made while bundling, for what they cost at
 * start-up for nothing msgbus uses. If a dependency changes, an edit that no
 * longer applies is skipped, with a note: the bundle is then only slower.
 */
const PATCHES: Patch[] = [
  {
    // The first localeCompare() sets up ICU's collation (~5 ms), here only to
    // sort a plugin's commands by id; the help sorts them again by itself.
    file: dependencyFile('@oclif/core/lib/config/plugin.js'),
    edits: [{text: '.sort((a, b) => a.id.localeCompare(b.id))', by: '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))'}],
    saves: "ICU's collation set-up (~5 ms)",
  },
  {
    // The cookie helpers accept Node's own Headers too, by reading
    // globalThis.Headers when undici loads, and that getter loads Node's
    // internal copy of undici. The bundle's helpers check undici's Headers
    // only; msgbus does not use them.
    file: dependencyFile('undici/lib/web/cookies/index.js'),
    edits: [{text: '[Headers, globalThis.Headers]', by: '[Headers]'}],
    saves: "Node's internal undici (~10 ms)",
  },
  {
    // node:http (~5 ms of each start, with its client, server and parser
    // modules) is loaded for one class, compared with when a stream is
    // destroyed: only a stream of that name can be one, and then node:http
    // is loaded already.
    file: dependencyFile('undici/lib/core/util.js'),
    edits: [
      {
        text: "const { IncomingMessage } = require('node:http')",
        by: "const isIncomingMessage = (stream) => Object.getPrototypeOf(stream).constructor.name === 'IncomingMessage' && Object.getPrototypeOf(stream).constructor === require('node:http').IncomingMessage",
      },
      {text: 'Object.getPrototypeOf(stream).constructor === IncomingMessage', by: 'isIncomingMessage(stream)'},
    ],
    saves: 'node:http (~5 ms)',
  },
  {
    file: dependencyFile('undici/lib/dispatcher/client.js'),
    edits: [
      // The HTTP/2 client (and node:http2) is needed only when a TLS server
      // negotiates h2, which undici does only when asked to (allowH2).
      {text: "const connectH2 = require('./client-h2.js')", by: "function connectH2 (client, socket) { return require('./client-h2.js')(client, socket) }"},
      // node:http again, for Node's limit on a response head's size, read
      // when a Client is made without one: the same figure, from where Node
      // takes it (its option, on the command line or in NODE_OPTIONS; else 16 KiB).
      {text: "const http = require('node:http')", by: 'const http = {}'},
      {
        text: 'const getDefaultNodeMaxHeaderSize = http &&',
        by: "const getDefaultNodeMaxHeaderSize = () => Number(/--max-http-header-size[= ](\\d+)/.exec(`${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`)?.[1] ?? 16384)\nconst getDefaultNodeMaxHeaderSizeUnpatched = http &&",
      },
    ],
    saves: 'node:http2 and node:http (~10 ms)',
  },
]

function patches(notes: string[]): EsbuildPlugin {
  return {
    name: 'msgbus-patches',
    setup(builder) {
      for (const patch of PATCHES) {
        builder.onLoad({filter: patch.file}, async (args) => {
          let source = await readFile(args.path, 'utf8')
          for (const {text, by} of patch.edits) {
            if (source.includes(text)) source = source.replace(text, by)
            else notes.push(`${relative(ROOT, args.path)} has changed: not patched, start-up pays for ${patch.saves}`)
          }

          return {contents: source, loader: 'js'}
        })
      }

      // Big JSON files (mime-db) as JSON.parse of a string: V8 parses JSON
      // much faster than the same data as an object literal.
      builder.onLoad({filter: /\.json$/}, async (args) => {
        const text = await readFile(args.path, 'utf8')
        return {contents: `module.exports = JSON.parse(${JSON.stringify(JSON.stringify(JSON.parse(text)))})`, loader: 'js'}
      })

      // undici uses node:assert only as assert(value) on its own invariants:
      // that much, without loading node:assert and its AssertionError (~2 ms
      // of each start). A failure still throws, with the same code.
      builder.onResolve({filter: /^node:assert$/}, (args) => (/[\\/]node_modules[\\/]undici[\\/]/.test(args.importer) ? {path: 'undici-assert', namespace: 'msgbus-shim'} : undefined))
      builder.onLoad({filter: /^undici-assert$/, namespace: 'msgbus-shim'}, () => ({
        contents: "module.exports = function assert (value, message) { if (!value) throw Object.assign(new Error(message ?? 'assertion failed in undici'), {code: 'ERR_ASSERTION'}) }",
        loader: 'js',
      }))
    },
  }
}

/** What src/ imports from undici (by name), all that the slim undici of the fast bundles offers. */
const SLIM_UNDICI_EXPORTS = ['Agent', 'Client', 'Dispatcher', 'FormData', 'request']

/**
 * A stand-in for undici's index in the fast bundles: undici's index loads
 * all of it (fetch, WebSocket, EventSource, caches, mocks, interceptors:
 * ~700 KB bundled, ~30 ms to run at each start), where msgbus's client uses
 * its dispatchers and request(). This module loads those the way the index
 * does (the Dispatcher API on the prototype, the global Agent, request()
 * made by the index's own makeDispatcher, whose text is taken from
 * index.js), and FormData only when used. Undefined, with a note, when
 * index.js has changed so that makeDispatcher is not found, or src/ imports
 * something else from undici: the fast bundles then take undici whole.
 */
async function slimUndiciSource(notes: string[]): Promise<string | undefined> {
  const index = join(ROOT, 'node_modules', 'undici', 'index.js')
  const makeDispatcher = /^function makeDispatcher \(fn\) \{\n[\s\S]*?\n\}\n/m.exec(await readFile(index, 'utf8'))?.[0]
  if (makeDispatcher === undefined) {
    notes.push('node_modules/undici/index.js has changed (no makeDispatcher): the fast bundles load undici whole (slower)')
    return undefined
  }

  const imported = new Set<string>()
  for (const file of await sourcesUnder(join(ROOT, 'src'))) {
    for (const match of (await readFile(file, 'utf8')).matchAll(/import\s*\{([^}]*)\}\s*from\s*'undici'/g)) {
      for (const name of match[1]!.split(',').map((part) => part.trim())) if (name && !name.startsWith('type ')) imported.add(name.split(/\s+as\s+/)[0]!)
    }
  }

  const missing = [...imported].filter((name) => !SLIM_UNDICI_EXPORTS.includes(name))
  if (missing.length > 0) {
    notes.push(`src/ imports ${missing.join(', ')} from undici, which scripts/build.ts's slim undici lacks: the fast bundles load undici whole (slower)`)
    return undefined
  }

  return `// Generated by scripts/build.ts (slimUndiciSource): do not edit.
'use strict'
const Dispatcher = require('undici/lib/dispatcher/dispatcher')
const api = require('undici/lib/api')
const util = require('undici/lib/core/util')
const { InvalidArgumentError } = require('undici/lib/core/errors')
const { getGlobalDispatcher } = require('undici/lib/global')

Object.assign(Dispatcher.prototype, api)

${makeDispatcher}
module.exports = {
  Agent: require('undici/lib/dispatcher/agent'),
  Client: require('undici/lib/dispatcher/client'),
  Dispatcher,
  get FormData () { return require('undici/lib/web/fetch/formdata').FormData },
  request: makeDispatcher(api.request)
}
`
}

/** The .ts files under a folder. */
async function sourcesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {withFileTypes: true, recursive: true})
  return entries.filter((entry) => entry.isFile() && entry.name.endsWith('.ts')).map((entry) => join(entry.parentPath, entry.name))
}

/** Resolves `undici`, imported from src/, to `file` (slimUndiciSource's module). */
function undiciAs(file: string): EsbuildPlugin {
  return {
    name: 'msgbus-slim-undici',
    setup(builder) {
      builder.onResolve({filter: /^undici$/}, (args) => (args.importer.startsWith(join(ROOT, 'src') + sep) ? {path: file} : undefined))
    },
  }
}

/** The chain of static imports from an entry to the first input that matches, or undefined. */
function staticPathTo(metafile: Metafile, entry: string, matches: (input: string) => boolean): string[] | undefined {
  const from = new Map<string, string>()
  const queue = [entry]
  const seen = new Set(queue)
  while (queue.length > 0) {
    const input = queue.shift()!
    if (matches(input)) {
      const path = [input]
      for (let at = from.get(input); at !== undefined; at = from.get(at)) path.unshift(at)
      return path
    }

    for (const imported of metafile.inputs[input]?.imports ?? []) {
      if (imported.kind !== 'import-statement' && imported.kind !== 'require-call') continue
      if (imported.external || seen.has(imported.path)) continue
      seen.add(imported.path)
      from.set(imported.path, input)
      queue.push(imported.path)
    }
  }

  return undefined
}

/** Modules of the project loaded with a dynamic import() (the client, for one): warm() loads them. */
function lazyModulesOf(metafile: Metafile, commands: CommandEntry[]): string[] {
  const commandFiles = new Set(commands.map((c) => relative(ROOT, c.file).split(sep).join('/')))
  const found = new Set<string>()
  for (const input of Object.values(metafile.inputs)) {
    for (const imported of input.imports) {
      if (imported.kind !== 'dynamic-import' || imported.external || imported.path.includes('node_modules/')) continue
      if (!commandFiles.has(imported.path) && imported.path.startsWith('src/')) found.add(imported.path)
    }
  }

  return [...found].sort().map((path) => join(ROOT, path))
}

/**
 * The bundle's first line names its build; bin/run.js uses a code cache only
 * when it was made for that build (V8 itself checks only the source's length).
 * "use strict" comes first, as esbuild's own would if the banner did not
 * precede it.
 */
const BUILD_ID = '0000000000000000'
const BANNER = `/* msgbus build ${BUILD_ID} */ "use strict"; var __import_meta_url = require('node:url').pathToFileURL(__filename).href;`

async function bundle(notes: string[], entry = ENTRY, outfile = BUNDLE, extraPlugins: EsbuildPlugin[] = []): Promise<{metafile: Metafile; files: OutputFile[]}> {
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [entry],
    outfile,
    write: false,
    bundle: true,
    // CommonJS: on Node 20, V8's code cache can only be used through
    // vm.Script. A dynamic import() of a bundled module stays lazy: the
    // module runs when the import() does.
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // src/lib/version.ts finds package.json from import.meta.url, two folders
    // up: from dist/cli/index.cjs as from dist/lib/version.js.
    define: {'import.meta.url': '__import_meta_url'},
    banner: {js: BANNER},
    // oclif requires TypeScript only to map dist/ to src/ in development
    // mode, which the bundle never uses (bin/dev.js runs the sources).
    // prom-client is loaded only by `serve --metrics` (a dynamic import):
    // left out of the bundle and its code cache, every other start reads
    // ~125 KB less; it is required from node_modules when asked for.
    // The bus links' clients likewise: only `serve --bus` loads them.
    external: ['typescript', 'prom-client', 'ioredis', '@nats-io/transport-node', '@nats-io/jetstream'],
    plugins: [...extraPlugins, patches(notes)],
    sourcemap: 'linked',
    sourcesContent: false,
    minifyWhitespace: true,
    minifySyntax: true,
    metafile: true,
    logLevel: 'warning',
  })
  return {metafile: result.metafile, files: result.outputFiles}
}

/** Writes beside, then renames: a CLI started meanwhile sees the old file or the new one. */
async function replaceFile(path: string, contents: string | Uint8Array): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`
  await writeFile(temporary, contents)
  await rename(temporary, path)
}

/** Runs `node bin/run.js ARGS` with MSGBUS_WRITE_CODE_CACHE=1, stdin from `input`; rejects with its stderr unless it exits with `status`. */
function runForCache(args: string[], input: string, {env = {}, status = 0}: {env?: NodeJS.ProcessEnv; status?: number} = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'run.js'), ...args], {
      cwd: ROOT,
      // The cache is only valid under the V8 flags it was made with: none but bin/run.js's own.
      env: {...process.env, ...env, MSGBUS_WRITE_CODE_CACHE: '1', NODE_OPTIONS: ''},
      stdio: ['pipe', 'ignore', 'pipe'],
      timeout: 60_000,
    })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.stdin.on('error', () => {})
    child.stdin.end(input)
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (code === status) resolve()
      else reject(new Error(`node bin/run.js ${args.join(' ')} (${code ?? signal}):\n${stderr.trim()}`))
    })
  })
}

/**
 * Runs each new bundle once and keeps what V8 compiled: the functions that
 * ran, and every module's top level (bin/run.js then loads all the lazy
 * modules). The run is the one start-up matters most for (issue 3):
 * `echo hi | msgbus send CHANNEL`, against a stand-in server here that
 * answers a publish with 204: through oclif for the main bundle (the fast
 * path turned off), `msgbus --help` if there is no send command or it
 * fails; each fast bundle through its FAST_COMMANDS warmUp run.
 */
async function writeCodeCache(commands: CommandEntry[], notes: string[]): Promise<void> {
  const server = createServer((request, response) => {
    request.resume()
    const status = request.method === 'POST' ? 204 : 404
    request.on('end', () => response.writeHead(status, {'Msgbus-Id': '1-0', 'Msgbus-Subscribers': '0'}).end())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const tolerate = (what: string) => (error: unknown) => {
    notes.push(`${what}: ${(error as Error).message.split('\n').join(' ')}`)
    return false
  }
  try {
    let main = false
    if (commands.some((c) => c.id === 'send')) {
      const {argv, input} = FAST_COMMANDS.send!.warmUp(url)
      main = await runForCache(argv, input, {env: {[NO_FAST_PATH]: '1'}}).then(() => true, tolerate('code cache made from --help'))
    }

    if (!main) await runForCache(['--help'], '')
    if (existsSync(FAST_VERSION.outfile)) await runForCache(['--version'], '').catch(tolerate(`no code cache for ${relative(ROOT, FAST_VERSION.outfile)}`))
    for (const c of commands.filter((c) => typeof c.fast === 'object')) {
      const {argv, input, status} = FAST_COMMANDS[c.id]!.warmUp(url)
      await runForCache(argv, input, {status}).catch(tolerate(`no code cache for dist/cli/fast-${c.id}.cjs`))
    }
  } finally {
    server.closeAllConnections()
    server.close()
  }
}

/**
 * Writes esbuild's output for `outfile`: the map first, the bundle (with
 * its new build id) last. Returns the bundle's length and build id.
 */
async function writeBundle(files: OutputFile[], outfile: string): Promise<{length: number; id: string}> {
  const code = files.find((file) => file.path === outfile)
  if (!code || !code.text.startsWith(BANNER.slice(0, BANNER.indexOf(BUILD_ID)))) throw new Error(`esbuild wrote no ${relative(ROOT, outfile)} with the banner`)
  // ASCII only, so that bin/run.js can read it as latin1 (~2 ms less than
  // decoding UTF-8). esbuild escapes strings already; what is left (in
  // regular expressions and licence comments) is escaped the same way.
  const text = code.text.replace(/[^\x00-\x7f]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`)
  const id = createHash('sha256').update(text).digest('hex').slice(0, BUILD_ID.length)
  for (const file of files.filter((f) => f !== code)) await replaceFile(file.path, file.contents)
  await replaceFile(outfile, text.replace(BUILD_ID, id))
  return {length: text.length, id}
}

/** `msgbus --version` without oclif: src/lib/cli/fast-version.ts, bundled as bin/run.js looks for it (fast-<first argument>.cjs). */
const FAST_VERSION = {entry: join(ROOT, 'src', 'lib', 'cli', 'fast-version.ts'), outfile: join(OUT_DIR, 'fast---version.cjs')}

/**
 * Bundles the fast path of each of FAST_COMMANDS that has a spec, and of
 * --version; returns the files written (bundles with their build id).
 * None when package.json declares oclif hooks: the fast path runs none.
 */
async function buildFastBundles(commands: CommandEntry[], hooks: string[], notes: string[]): Promise<Array<{file: string; id: string}>> {
  const written: Array<{file: string; id: string}> = []
  const add = async (files: OutputFile[], outfile: string) =>
    written.push({file: outfile, id: (await writeBundle(files, outfile)).id}, ...files.filter((f) => f.path !== outfile).map((f) => ({file: f.path, id: ''})))
  if (hooks.length > 0) {
    notes.push(`no fast path: package.json declares oclif hooks (${hooks.join(', ')}), which only oclif runs`)
    return written
  }

  await add((await bundle(notes, FAST_VERSION.entry, FAST_VERSION.outfile)).files, FAST_VERSION.outfile)
  const slim = await slimUndiciSource(notes)
  const slimFile = join(BUILD_DIR, 'undici-slim.cjs')
  if (slim !== undefined) await writeFile(slimFile, slim)
  const plugins = slim === undefined ? [] : [undiciAs(slimFile)]
  for (const c of commands) {
    if (typeof c.fast === 'string') notes.push(`${c.id} has no fast path: ${c.fast}`)
    if (typeof c.fast !== 'object') continue
    const entry = join(BUILD_DIR, `fast-${c.id}.ts`)
    const outfile = join(OUT_DIR, `fast-${c.id}.cjs`)
    // Twice, as for the main bundle: the first pass finds the modules loaded with import().
    await writeFile(entry, fastEntrySource(c.fast, FAST_COMMANDS[c.id]!, []))
    const lazyModules = lazyModulesOf((await bundle([], entry, outfile, plugins)).metafile, commands)
    await writeFile(entry, fastEntrySource(c.fast, FAST_COMMANDS[c.id]!, lazyModules))
    await add((await bundle(notes, entry, outfile, plugins)).files, outfile)
  }

  return written
}

export interface BuildResult {
  commands: CommandEntry[]
  metafile: Metafile
  /** Bytes of the bundle and of its code cache. */
  bytes: {bundle: number; cache: number}
  notes: string[]
}

export async function buildCli(): Promise<BuildResult> {
  const {commands, plugins, hooks} = await readCommands()
  if (!commands.some((c) => c.plugin === undefined)) throw new Error('oclif finds no commands in src/commands')
  await mkdir(BUILD_DIR, {recursive: true})
  await mkdir(OUT_DIR, {recursive: true})

  // Twice: the first pass finds the modules loaded with import(), for warm().
  const notes: string[] = []
  await writeFile(ENTRY, entrySource(commands, plugins, []))
  const lazyModules = lazyModulesOf((await bundle([])).metafile, commands)
  await writeFile(ENTRY, entrySource(commands, plugins, lazyModules))
  const {metafile, files} = await bundle(notes)

  const entry = relative(ROOT, ENTRY).split(sep).join('/')
  for (const name of LAZY_ONLY) {
    const path = staticPathTo(metafile, entry, (input) => input.includes(`node_modules/${name}/`))
    if (path) {
      throw new Error(
        `${name} is loaded at start-up, by every command, through static imports:\n  ${path.join('\n  → ')}\n` +
          `import it with a dynamic import() in the code that needs it (e.g. in a command's run()).`,
      )
    }
  }

  const main = await writeBundle(files, BUNDLE)
  const fast = await buildFastBundles(commands, hooks, notes)
  // Whatever else is in dist/cli is from an older layout, or the old caches.
  const ours = new Set([...files.map((f) => f.path), ...fast.map((f) => f.file)])
  for (const name of await readdir(OUT_DIR)) if (!ours.has(join(OUT_DIR, name))) await rm(join(OUT_DIR, name), {recursive: true, force: true})

  await writeCodeCache(commands, notes)
  const cacheOf = (file: string, id: string) => readFile(`${file}.cache`).then((cache) => (cache.toString('latin1', 0, id.length) === id ? cache : undefined), () => undefined)
  const cache = await cacheOf(BUNDLE, main.id)
  if (!cache) notes.push('no code cache was written: the CLI starts without it (slower)')
  for (const {file, id} of fast.filter((f) => f.id !== '')) if (!(await cacheOf(file, id))) notes.push(`no code cache for ${relative(ROOT, file)}: its command starts without it (slower)`)
  return {commands, metafile, bytes: {bundle: main.length, cache: cache?.length ?? 0}, notes}
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now()
  buildCli().then(
    ({commands, bytes, notes}) => {
      const kib = (n: number) => `${Math.round(n / 1024)} KiB`
      process.stdout.write(
        `dist/cli/index.cjs: ${commands.map((c) => c.id).join(', ')}; ${kib(bytes.bundle)}, code cache ${kib(bytes.cache)}; ` +
          `${((performance.now() - started) / 1000).toFixed(1)} s\n${notes.map((note) => `build: ${note}\n`).join('')}`,
      )
    },
    (error: unknown) => {
      process.stderr.write(`build: ${error instanceof Error ? error.message : String(error)}\n`)
      process.exit(1)
    },
  )
}
