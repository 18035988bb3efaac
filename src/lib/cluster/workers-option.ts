import {availableParallelism} from 'node:os'
import {MsgbusError} from '../util/errors.js'

/** Most workers `--workers` takes: past the cores, more workers only add IPC. */
export const MAX_WORKERS = 256

/** `--workers N|auto` as a count: `auto` is the machine's cores (os.availableParallelism()); absent is 1, one process and no cluster. */
export function workerCount(value: string | undefined): number {
  if (value === undefined) return 1
  const text = value.trim().toLowerCase()
  if (text === 'auto') return availableParallelism()
  const count = /^\d+$/.test(text) ? Number(text) : Number.NaN
  if (!Number.isInteger(count) || count < 1 || count > MAX_WORKERS) {
    throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--workers takes a number from 1 to ${MAX_WORKERS}, or auto; not ${JSON.stringify(value)}`)
  }

  return count
}
