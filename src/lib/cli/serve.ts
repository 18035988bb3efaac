import {readFile} from 'node:fs/promises'
import {createBus, type BusServer} from '../server/bus-server.js'
import {LogLevel, type Logger} from '../server/ops/logger.js'
import type {BusServerOptions} from '../server/options.js'
import {dropPrivileges, resolveUser} from '../server/ops/privileges.js'
import {reasonOf} from '../util/errors.js'
import {startedByNpm, watchParent} from './parent-watch.js'
import {openLinkFor} from '../link/open-link.js'

export interface ServeOptions extends Omit<BusServerOptions, 'cert' | 'key' | 'logger'> {
  /** PEM files, read now and again on SIGHUP. */
  certFile?: string
  keyFile?: string
  /** Run as this user once the ports are bound. */
  user?: string
  /** `--bus URL`: the shared log this node orders messages through (link/open-link.ts): a Redis stream, a NATS JetStream stream. */
  bus?: string
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
export async function serve(options: ServeOptions): Promise<BusServer> {
  const {certFile, keyFile, user: userName, logger, bus, ...busOptions} = options
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
