import {startedByNpm, watchParent} from './parent-watch.js'

export interface SignalTie {
  /** The start is over: a signal that came during it is acted on now, and npm's shell is watched (parent-watch.ts). */
  started(): void
  /** Stops as SIGTERM does (once), saying why. */
  shutdown(why: string): void
}

/**
 * Ties a server to signals: SIGINT and SIGTERM call `stop` once and exit 0
 * when it is done; SIGHUP calls `reload`. Taken before the server starts:
 * without a handler SIGINT, SIGTERM and SIGHUP kill the process, and one sent
 * as soon as the listen line shows (a supervisor, systemd's ExecReload, a
 * script) could come before serve had one. One that comes during the start
 * is acted on once the start is over.
 */
export function tieToSignals(stop: (why: string) => Promise<void>, reload: () => void): SignalTie {
  let started = false
  let stopWhenStarted: string | undefined
  let reloadWhenStarted = false
  let stopping = false
  const shutdown = (why: string) => {
    if (!started) {
      stopWhenStarted ??= why
      return
    }

    if (stopping) return
    stopping = true
    stop(why).then(() => process.exit(0))
  }

  process.once('SIGINT', () => shutdown('SIGINT received'))
  process.once('SIGTERM', () => shutdown('SIGTERM received'))
  process.on('SIGHUP', () => {
    if (started) reload()
    else reloadWhenStarted = true
  })
  return {
    shutdown,
    started() {
      started = true
      if (startedByNpm()) watchParent((parent) => shutdown(`parent process ${parent} exited (npm's shell, which does not pass SIGTERM on)`))
      if (stopWhenStarted !== undefined) shutdown(stopWhenStarted)
      else if (reloadWhenStarted) reload()
    },
  }
}
