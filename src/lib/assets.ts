import {fileURLToPath} from 'node:url'

/**
 * The web pages shipped with the package (web/ at its root). Found from this
 * module, two folders below the root in src/ and dist/ alike, and in the CLI
 * bundle (dist/cli), as version.ts finds package.json.
 */
export const WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url))
