#!/usr/bin/env node
// The installed CLI. Two ways in, both made by scripts/build.ts (`npm run
// build`), each one bundled file compiled with V8's code cache beside it:
// - `send` and `dump` with a plain command line, and `--version`:
//   dist/cli/fast-<id>.cjs (fast---version.cjs), the command's own run
//   function and what it loads, without oclif. It parses the command line
//   from the command's own flag definitions and hands anything it does not
//   take exactly (help, errors, unknown flags...) back, before doing
//   anything, to
// - oclif and every command: dist/cli/index.cjs, given to oclif through its
//   explicit command strategy.
// Start-up then reads two files instead of resolving and compiling a couple
// of hundred modules. MSGBUS_NO_FAST_PATH (set to anything) makes every
// command go through oclif. bin/dev.js runs the sources instead (through
// tsx, with package.json's pattern strategy: new command files need no
// build there).
//
// CommonJS (bin/package.json): an ES module entry would cost every start
// Node's ES module loader, ~10 ms.
'use strict'
const {readFileSync, renameSync, writeFileSync} = require('node:fs')
const {createRequire, Module} = require('node:module')
const {dirname, join} = require('node:path')
const {setFlagsFromString} = require('node:v8')
const {constants: vmConstants, Script} = require('node:vm')

// Two V8 flags, set before anything is compiled (V8 takes a code cache only
// under the flags it was made with, and the build makes it through this file):
// - undici parses HTTP with llhttp compiled to WebAssembly. V8 compiles it with
//   its baseline compiler, then, once a function has run enough, again with
//   the optimising one on a background thread, and Node waits for that at
//   exit: after a single request, ~70 ms spent on code that will never run.
//   With this budget (about 16 requests' worth instead of one) short commands
//   stay on baseline code, and long streams (dump, send --lines) still tier up
//   within milliseconds. Only WebAssembly is affected.
// - V8 trusts a code cache made by the same V8 with the same flags, and a
//   damaged one would crash it; with this, caches carry a checksum, checked as
//   they load (<1 ms), and a damaged cache is rejected like a stale one.
setFlagsFromString('--wasm-tiering-budget=100000000')
setFlagsFromString('--verify-snapshot-checksum')

const root = join(__dirname, '..')
// Set by scripts/build.ts: run, then save V8's compiled code for next time.
const writeCache = process.env.MSGBUS_WRITE_CODE_CACHE === '1'

/**
 * Runs a bundle (CommonJS, as Node would run it, but through vm.Script to
 * give V8 its code cache: Node 20 has no compile cache of its own) and
 * returns its module, with save() to write its code cache; undefined when
 * `optional` and the file is missing. The module is registered in require's
 * cache first, so that oclif, loading the same file for the commands, gets
 * this very instance. A bundle has no import() to make; should one come (a
 * plugin installed later), Node's own loader serves it (with a warning that
 * this is experimental, on Node 20).
 */
function load(file, optional = false) {
  let source
  try {
    // ASCII (scripts/build.ts makes sure of it): latin1 is the cheapest decoding.
    source = readFileSync(file, 'latin1')
  } catch (error) {
    if (optional && error.code === 'ENOENT') return undefined
    process.stderr.write(`msgbus: cannot read ${file} (${error.code ?? error.message}); run \`npm run build\`\n`)
    process.exit(1)
  }

  // The cache file is the bundle's build id, then V8's data. A cache made for
  // another build is not used (V8 would check only the source's length); one
  // from another Node or V8 version, or other V8 flags, V8 rejects itself.
  const cacheFile = `${file}.cache`
  const build = /^\/\* msgbus build ([0-9a-f]{16}) \*\//.exec(source)?.[1]
  let cachedData
  if (!writeCache && build !== undefined) {
    try {
      const cache = readFileSync(cacheFile)
      if (cache.toString('latin1', 0, build.length) === build) cachedData = cache.subarray(build.length)
    } catch {
      // No cache: V8 compiles the bundle, as it would any module.
    }
  }

  const script = new Script(`(function (exports, require, module, __filename, __dirname) {\n${source}\n})`, {
    filename: file,
    lineOffset: -1,
    cachedData,
    importModuleDynamically: vmConstants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  })
  const bundle = new Module(file)
  bundle.filename = file
  const require = createRequire(file)
  require.cache[file] = bundle
  script.runInThisContext().call(bundle.exports, bundle.exports, require, bundle, file, dirname(file))
  bundle.loaded = true
  bundle.save = async () => {
    if (!writeCache || build === undefined) return
    await bundle.exports.warm()
    const temporary = `${cacheFile}.${process.pid}.tmp`
    writeFileSync(temporary, Buffer.concat([Buffer.from(build, 'latin1'), script.createCachedData()]))
    renameSync(temporary, cacheFile)
  }
  return bundle
}

// A command name or --version, not another flag or a path: only then is there a fast bundle to look for.
const id = process.argv[2]
const fast = process.env.MSGBUS_NO_FAST_PATH === undefined && /^(?:[a-z][a-z-]*|--version)$/.test(id ?? '') ? load(join(root, 'dist', 'cli', `fast-${id}.cjs`), true) : undefined
async function main() {
  const status = fast === undefined ? undefined : await fast.exports.run(process.argv.slice(3))
  if (status !== undefined) {
    await fast.save()
    // As oclif ends a command that exits non-zero; on success, Node ends when nothing is left to do.
    if (status !== 0) process.exit(status)
    return
  }

  const bundle = load(join(root, 'dist', 'cli', 'index.cjs'))
  const {execute, settings, BUNDLED_PLUGINS} = bundle.exports
  const pjson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  // package.json keeps the pattern strategy for bin/dev.js and scripts/man.ts.
  pjson.oclif.commands = {strategy: 'explicit', target: './dist/cli/index.cjs', identifier: 'COMMANDS'}
  // Their commands are in the bundle.
  pjson.oclif.plugins = (pjson.oclif.plugins ?? []).filter((name) => !(BUNDLED_PLUGINS ?? []).includes(name))
  // Compiled code: never look for sources to transpile, even with NODE_ENV=development.
  settings.enableAutoTranspile = false

  await execute({loadOptions: {root, pjson}})
  await bundle.save()
}

// A failure outside oclif's and the commands' own handling ends the process as an uncaught error would.
main()
