import {readFile} from 'node:fs/promises'
import {createBus, type BusServer} from '../server/bus-server.js'
import {LogLevel, type Logger} from '../server/ops/logger.js'
import type {BusServerOptions} from '../server/options.js'
import {dropPrivileges, resolveUser} from '../server/ops/privileges.js'
import {reasonOf} from '../util/errors.js'
import {openLinkFor} from '../link/open-link.js'
import {tieToSignals} from './signals.js'
import {serveWorkers} from './serve-workers.js'
import {joinPrimary, workerSlot} from '../cluster/worker.js'
import {workerCount} from '../cluster/workers-option.js'

export interface ServeOptions extends Omit<BusServerOptions, 'cert' | 'key' | 'logger'> {
  /** PEM files, read now and again on SIGHUP. */
  certFile?: string
  keyFile?: string
  /** Run as this user once the ports are bound. */
  user?: string
  /** `--bus URL`: the shared log this node orders messages through (link/open-link.ts): a Redis stream, a NATS JetStream stream. */
  bus?: string
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
 * certificate and the ACL, keeping what cannot be read. With `workers` above
 * 1 this process is the primary of a cluster (serve-workers.ts), and each
 * worker it forks runs this again, serving with a link to it.
 */
export async function serve(options: ServeOptions): Promise<BusServer | undefined> {
  const slot = workerSlot()
  const workers = workerCount(options.workers)
  // The primary of `--workers N`: it forks the workers, which run this command line again (slot set).
  if (workers > 1 && slot === undefined) return serveWorkers(options, workers)
  const worker = slot === undefined ? undefined : joinPrimary(options)
  const {certFile, keyFile, user: userName, logger, workers: _workers, bus, ...busOptions} = worker ? {...options, ...worker.options} : options
  // Looked up before anything is bound, so a typo fails at once.
  const user = userName === undefined ? undefined : resolveUser(userName)
  const cert = certFile === undefined ? undefined : await readPem(certFile, 'certificate')
  const key = keyFile === undefined ? undefined : await readPem(keyFile, 'key')
  // Made here, opened by the server as it starts (its readiness check is named after it).
  const link = bus === undefined ? busOptions.link : await openLinkFor(bus, {logger})
  const server = createBus({...busOptions, cert, key, logger, link})
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

  const signals = tieToSignals(async (why) => {
    logger.log(LogLevel.Always, 'stop', why)
    await server.stop()
  }, reload)
  await server.start()
  if (user) {
    dropPrivileges(user)
    logger.log(LogLevel.Always, 'listen', `running as ${userName} (uid ${user.uid}, gid ${user.gid})`)
  }

  worker?.started(server, () => signals.shutdown('the cluster primary exited'))
  signals.started()
  return server
}

async function reloadCertificate(server: BusServer, certFile: string, keyFile: string | undefined): Promise<void> {
  const cert = await readPem(certFile, 'certificate')
  server.reloadCertificate(cert, keyFile === undefined ? cert : await readPem(keyFile, 'key'))
}
