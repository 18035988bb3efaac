import {fileURLToPath} from 'node:url'

/**
 * The web pages shipped with the package (web/ at its root). Found from this
 * module, two folders below the root in src/ and dist/ alike, and in the CLI
 * bundle (dist/cli), as version.ts finds package.json.
 */
export const WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url))

/**
 * The native module: the server's sender (src/native/send-many.c) and the
 * load tools' reader (read-many.c), built by `npm run build` when a C
 * compiler is there (scripts/build-native.ts); in dist/ for src/ and dist/ alike.
 */
export const NATIVE_MODULE = fileURLToPath(new URL('../../dist/native/msgbus.node', import.meta.url))
