import {readFileSync} from 'node:fs'

/**
 * The process's soft limit on open files (`ulimit -n`), from
 * /proc/self/limits; undefined where that cannot be read (not Linux), or
 * when there is no limit.
 */
export function openFileLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    const limit = Number(line?.[1])
    return Number.isSafeInteger(limit) && limit > 0 ? limit : undefined
  } catch {
    return undefined
  }
}

/**
 * Descriptors kept back from connections: Node itself holds some twenty
 * (event loop, pipes, stdio, worker threads), and files served from the
 * document root, certificate and ACL reloads each need one while they run.
 */
export function reservedDescriptors(limit: number): number {
  return Math.max(64, Math.floor(limit / 32))
}

/** The most connections a server can hold within the open-file limit, with room for the rest. */
export function connectionsWithin(limit: number): number {
  return Math.max(1, limit - reservedDescriptors(limit))
}
