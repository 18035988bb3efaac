/**
 * Compiles the native sender (src/native/send-many.c) into
 * dist/native/send-many.node, run by `npm run build` after tsc:
 *
 *   node --import tsx/esm scripts/build-native.ts
 *
 * It is Node-API, so one build serves every Node from 20 on, and it needs a C
 * compiler only: `$CC`, else `cc`, with the headers of the node-api-headers
 * package (else those installed beside node). Without a compiler, or when it
 * fails, the build goes on and says so in one line: the server then writes
 * through Node's streams (src/lib/server/stream/native-send.ts), which costs
 * it more CPU a delivery and changes nothing else. MSGBUS_NATIVE_SEND=0 at
 * build time skips it.
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, rmSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {NATIVE_SENDER} from '../src/lib/assets.js'
import {NATIVE_SEND_ENV, NATIVE_SEND_OFF} from '../src/lib/server/stream/native-send.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SOURCE = join(ROOT, 'src', 'native', 'send-many.c')
const OUTPUT = NATIVE_SENDER

/** The folder of node_api.h: the pinned package's, else the one installed with this node. */
function headers(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('node-api-headers/package.json')
    const include = join(dirname(pkg), 'include')
    if (existsSync(join(include, 'node_api.h'))) return include
  } catch {
    // Not installed (a production install): look beside node.
  }

  const beside = join(dirname(process.execPath), '..', 'include', 'node')
  return existsSync(join(beside, 'node_api.h')) ? beside : undefined
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
  const args = ['-O2', '-std=c11', '-D_GNU_SOURCE', '-Wall', '-Werror', '-fPIC', '-shared', '-fvisibility=hidden', '-I', include, SOURCE, '-o', OUTPUT]
  const result = spawnSync(cc, args, {encoding: 'utf8'})
  if (result.error || result.status !== 0) {
    const why = result.error ? `${cc}: ${(result.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no C compiler' : result.error.message}` : `${cc} failed: ${(result.stderr || '').trim().split('\n')[0]}`
    console.log(`native sender: not built (${why}); the server writes through Node's streams`)
    rmSync(OUTPUT, {force: true})
    return
  }

  console.log(`native sender: ${OUTPUT.slice(ROOT.length)}`)
}

main()
