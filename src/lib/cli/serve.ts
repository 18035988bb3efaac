import {readFile} from 'node:fs/promises'
import {createBus, type BusServer} from '../server/bus-server.js'
import {LogLevel, type Logger} from '../server/ops/logger.js'
import type {BusServerOptions} from '../server/options.js'
import {dropPrivileges, resolveUser} from '../server/ops/privileges.js'
import {reasonOf} from '../util/errors.js'
import {startedByNpm, watchParent} from './parent-watch.js'
import {serveWorkers} from './serve-workers.js'
import {joinPrimary, workerSlot} from '../cluster/worker.js'
import {workerCount} from '../cluster/workers-option.js'

export interface ServeOptions extends Omit<BusServerOptions, 'cert' | 'key' | 'logger'> {
  /** PEM files, read now and again on SIGHUP. */
  certFile?: string
  keyFile?: string
  /** Run as this user once the ports are bound. */
  user?: string
  /** `N` or `auto`: serve from N worker processes (node:cluster) ordered by a primary; absent or 1, this process alone. */
  workers?: string
  logger: Logger
}

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (error) {
    throw new Error(`cannot read ${what} ${path}: ${reasonOf(error)}`, {cause: error})
  }
}

/**
 * `msgbus serve`: starts the bus, drops privileges, and ties it to signals:
 * SIGINT and SIGTERM end every stream properly and exit 0 (and so does the
 * death of npm's shell, under npx: parent-watch.ts); SIGHUP re-reads the
 * certificate and the ACL, keeping what cannot be read.
 */
export async function serve(options: ServeOptions): Promise<BusServer | undefined> {
  const slot = workerSlot()
  const workers = workerCount(options.workers)
  // The primary of `--workers N`: it forks the workers, which run this command line again (slot set).
  if (workers > 1 && slot === undefined) return serveWorkers(options, workers)
  const worker = slot === undefined ? undefined : joinPrimary(options)
  const {certFile, keyFile, user: userName, logger, workers: _workers, ...busOptions} = worker ? {...options, ...worker.options} : options
  // Looked up before anything is bound, so a typo fails at once.
  const user = userName === undefined ? undefined : resolveUser(userName)
  const cert = certFile === undefined ? undefined : await readPem(certFile, 'certificate')
  const key = keyFile === undefined ? undefined : await readPem(keyFile, 'key')
  const server = createBus({...busOptions, cert, key, logger})
  const reload = () => {
    if (certFile !== undefined) {
      reloadCertificate(server, certFile, keyFile).then(
        () => logger.log(LogLevel.Always, 'reload', `certificate ${certFile}${keyFile ? ` and key ${keyFile}` : ''}`),
        (error: Error) => logger.warn('reload', `${error.message}; keeping the previous certificate`),
      )
    }

    if (options.acl !== undefined) {
      server.reloadAcl().then(
        ({file, description}) => logger.log(LogLevel.Always, 'reload', `acl ${file} (${description})`),
        (error: Error) => logger.warn('reload', `${error.message}; keeping the previous ACL`),
      )
    }
  }

  // Signals are taken before the server starts: without a handler SIGINT,
  // SIGTERM and SIGHUP kill the process, and one sent as soon as the listen
  // line shows (a supervisor, systemd's ExecReload, a script) could come
  // before serve had one. One that comes during the start is acted on once
  // the start is over.
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
    logger.log(LogLevel.Always, 'stop', why)
    server.stop().then(() => process.exit(0))
  }

  process.once('SIGINT', () => shutdown('SIGINT received'))
  process.once('SIGTERM', () => shutdown('SIGTERM received'))
  process.on('SIGHUP', () => {
    if (started) reload()
    else reloadWhenStarted = true
  })
  await server.start()
  started = true
  if (user) {
    dropPrivileges(user)
    logger.log(LogLevel.Always, 'listen', `running as ${userName} (uid ${user.uid}, gid ${user.gid})`)
  }

  worker?.started(server, () => shutdown('the cluster primary exited'))
  if (startedByNpm()) {
    watchParent((parent) => shutdown(`parent process ${parent} exited (npm's shell, which does not pass SIGTERM on)`))
  }

  if (stopWhenStarted !== undefined) shutdown(stopWhenStarted)
  else if (reloadWhenStarted) reload()
  return server
}

async function reloadCertificate(server: BusServer, certFile: string, keyFile: string | undefined): Promise<void> {
  const cert = await readPem(certFile, 'certificate')
  server.reloadCertificate(cert, keyFile === undefined ? cert : await readPem(keyFile, 'key'))
}
