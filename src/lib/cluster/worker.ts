/**
 * The worker's side of `serve --workers`: the same `msgbus serve` command
 * line, re-run by cluster.fork() with the slot in the environment, serving
 * HTTP on the port the primary shares out, and ordering its messages
 * through the primary (worker-link.ts). What only one process may do is the
 * primary's: the history folder, `--metrics`, `--stats`.
 */
import cluster from 'node:cluster'
import type {BusServer} from '../server/bus-server.js'
import type {BusServerOptions} from '../server/options.js'
import {workerShare} from './limits.js'
import type {WorkerSays} from './ipc.js'
import {WorkerLink, type PrimaryChannel} from './worker-link.js'

/** Set by the primary in each worker's environment: its slot (1..N, kept by the worker forked in its place) and N. */
export const SLOT_VARIABLE = 'MSGBUS_WORKER_SLOT'
export const COUNT_VARIABLE = 'MSGBUS_WORKER_COUNT'

/** How often a worker tells the primary its counters. */
export const COUNTERS_EVERY_MS = 1000

/** This process's slot when it is a worker of `serve --workers`. */
export function workerSlot(): number | undefined {
  const slot = process.env[SLOT_VARIABLE]
  return cluster.isWorker && slot !== undefined ? Number(slot) : undefined
}

export interface JoinedWorker {
  /** The options this worker serves with: its share of the limits, the link to the primary, no history folder, metrics or stats. */
  options: BusServerOptions
  /** Once the server has started: tells the primary, reports counters; `onPrimaryGone` stops the worker when the primary dies. */
  started(server: BusServer, onPrimaryGone: () => void): void
}

export function joinPrimary(options: BusServerOptions): JoinedWorker {
  const channel = process as unknown as PrimaryChannel & {send(batch: WorkerSays[]): void}
  const link = new WorkerLink(channel)
  const workers = Number(process.env[COUNT_VARIABLE] ?? 1)
  return {
    options: {...options, ...workerShare(options, workers), link, historyDir: undefined, metrics: undefined, statsInterval: 0},
    started(server, onPrimaryGone) {
      const send = (said: WorkerSays) => {
        if (process.connected) channel.send([said])
      }

      send({t: 'ready'})
      const timer = setInterval(() => send({t: 'counters', counters: server.counters()}), COUNTERS_EVERY_MS)
      timer.unref()
      // The channel closes when the primary exits, however it exits: the worker must not outlive it.
      process.once('disconnect', () => {
        clearInterval(timer)
        link.disconnected()
        onPrimaryGone()
      })
    },
  }
}

