import {fileURLToPath} from 'node:url'

/**
 * The web pages shipped with the package (web/ at its root). Found from this
 * module, two folders below the root in src/ and dist/ alike, and in the CLI
 * bundle (dist/cli), as version.ts finds package.json.
 */
export const WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url))

/** The native sender, built by `npm run build` when a C compiler is there (scripts/build-native.ts); in dist/ for src/ and dist/ alike. */
export const NATIVE_SENDER = fileURLToPath(new URL('../../dist/native/send-many.node', import.meta.url))
