/**
 * Compiles the native module (src/native: the server's sender, send-many.c,
 * its answer cork, cork.c, and the load tools' reader, read-many.c) into
 * dist/native/msgbus.node, run
 * by `npm run build` after tsc:
 *
 *   node --import tsx/esm scripts/build-native.ts
 *
 * It is Node-API, so one build serves every Node from 20 on, and it needs a C
 * compiler only: `$CC`, else `cc`, with the headers of the node-api-headers
 * package (else those installed beside node). The reader also needs libuv's
 * header, installed beside node; without it the module has the sender only,
 * and test-sub reads through Node. Without a compiler, or when it fails, the
 * build goes on and says so in one line: the server then writes through
 * Node's streams (src/lib/server/stream/native-send.ts), which costs it more
 * CPU a delivery and changes nothing else. MSGBUS_NATIVE_SEND=0 at build time
 * skips it.
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, rmSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {NATIVE_MODULE} from '../src/lib/assets.js'
import {NATIVE_SEND_ENV, NATIVE_SEND_OFF} from '../src/lib/server/stream/native-send.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SOURCES = ['send-many.c', 'read-many.c', 'cork.c'].map((file) => join(ROOT, 'src', 'native', file))
const OUTPUT = NATIVE_MODULE

/** Node's own headers, installed beside it (with libuv's uv.h), if they are. */
const BESIDE_NODE = join(dirname(process.execPath), '..', 'include', 'node')

/** The folder of node_api.h: the pinned package's, else the one installed with this node. */
function headers(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('node-api-headers/package.json')
    const include = join(dirname(pkg), 'include')
    if (existsSync(join(include, 'node_api.h'))) return include
  } catch {
    // Not installed (a production install): look beside node.
  }

  return existsSync(join(BESIDE_NODE, 'node_api.h')) ? BESIDE_NODE : undefined
}

function main(): void {
  rmSync(OUTPUT, {force: true})
  if (process.env[NATIVE_SEND_ENV] === NATIVE_SEND_OFF) {
    console.log(`native sender: not built (${NATIVE_SEND_ENV}=${NATIVE_SEND_OFF})`)
    return
  }

  const include = headers()
  if (include === undefined) {
    console.log("native sender: not built (no node_api.h: npm install node-api-headers); the server writes through Node's streams")
    return
  }

  mkdirSync(dirname(OUTPUT), {recursive: true})
  const cc = process.env.CC || 'cc'
  // Node resolves the napi_* symbols when it loads the module: they stay undefined here.
  // uv.h from beside node, searched after the pinned node_api.h.
  const uv = existsSync(join(BESIDE_NODE, 'uv.h')) ? ['-idirafter', BESIDE_NODE] : []
  const args = ['-O2', '-std=c11', '-D_GNU_SOURCE', '-Wall', '-Werror', '-fPIC', '-shared', '-fvisibility=hidden', '-I', include, ...uv, ...SOURCES, '-o', OUTPUT]
  const result = spawnSync(cc, args, {encoding: 'utf8'})
  if (result.error || result.status !== 0) {
    const why = result.error ? `${cc}: ${(result.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no C compiler' : result.error.message}` : `${cc} failed: ${(result.stderr || '').trim().split('\n')[0]}`
    console.log(`native sender: not built (${why}); the server writes through Node's streams`)
    rmSync(OUTPUT, {force: true})
    return
  }

  console.log(`native sender${uv.length > 0 ? ' and reader' : ' (no reader: no uv.h beside node)'}: ${OUTPUT.slice(ROOT.length)}`)
}

main()
