import {ClusterPrimary, WorkerStartError} from '../cluster/primary.js'
import {LogLevel} from '../server/ops/logger.js'
import {MsgbusError} from '../util/errors.js'
import {tieToSignals} from './signals.js'
import type {ServeOptions} from './serve.js'

/**
 * `msgbus serve --workers N` (N > 1), in the primary: refuses what a cluster
 * cannot do, starts the primary (cluster/primary.ts) and ties it to
 * signals as serve ties a server: SIGINT and SIGTERM stop every worker, each
 * ending its streams properly, and exit 0; SIGHUP goes on to every worker.
 */
export async function serveWorkers(options: ServeOptions, workers: number): Promise<undefined> {
  if (options.user !== undefined) {
    // Node's cluster binds the ports in the primary, and binds them again for a worker forked later: the primary cannot drop root.
    throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', '--user cannot be used with --workers: the primary binds the ports for every worker it forks, so it would stay root; run as the user with CAP_NET_BIND_SERVICE instead')
  }

  if (options.bus !== undefined) {
    throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', '--workers cannot be used with --bus: run one msgbus serve --bus per core instead (each a node of the shared log)')
  }

  const {logger} = options
  const primary = new ClusterPrimary(options, workers)
  const signals = tieToSignals(
    (why) => primary.stop(why),
    () => {
      logger.log(LogLevel.Always, 'reload', `SIGHUP passed on to ${primary.serving} workers`)
      primary.reload()
    },
  )
  try {
    await primary.start()
  } catch (error) {
    // The worker said why; its exit code is the command's.
    if (error instanceof WorkerStartError) process.exit(error.exitCode)
    await primary.stop('start failed')
    throw error
  }

  signals.started()
  return undefined
}
