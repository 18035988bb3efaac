import {createRequire} from 'node:module'
import type {Socket} from 'node:net'
import {NATIVE_MODULE} from '../assets.js'

/** The compiled module (src/native), or why there is none; loaded once. */
type NativeModule = {exports: Record<string, unknown>; why?: undefined} | {exports?: undefined; why: string}

let loaded: NativeModule | undefined

/** Never throws: whoever uses the module has a way without it. */
function nativeModule(): NativeModule {
  loaded ??= load()
  return loaded
}

function load(): NativeModule {
  if (process.platform === 'win32') return {why: 'not on Windows'}
  try {
    return {exports: createRequire(import.meta.url)(NATIVE_MODULE) as Record<string, unknown>}
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return {why: code === 'MODULE_NOT_FOUND' ? 'not built (no C compiler at npm install?)' : `cannot load: ${(error as Error).message.split('\n')[0]}`}
  }
}

/** The module's functions `names`, when it has them all: a module built from older sources has fewer. */
export function nativeFunctions<T>(names: Array<keyof T & string>): {functions: T; why?: undefined} | {functions?: undefined; why: string} {
  const {exports, why} = nativeModule()
  if (!exports) return {why}
  const missing = names.filter((name) => typeof exports[name] !== 'function')
  return missing.length === 0 ? {functions: exports as T} : {why: `${NATIVE_MODULE} has no ${missing.join(', ')} (npm run build)`}
}

/** What net.Socket keeps of its libuv handle; not public API, so read with care. */
interface HandleView {
  _handle?: {fd?: unknown} | null
  encrypted?: boolean
}

/**
 * The file descriptor the native module may write to or read from for this
 * socket, or -1: a plain TCP or Unix socket only. A TLS socket's handle
 * reports the TCP socket under it, and bytes sent or read there would skip
 * the encryption.
 */
export function plainSocketFd(socket: Socket): number {
  const view = socket as unknown as HandleView
  if (view.encrypted === true) return -1
  const fd = view._handle?.fd
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1
}
