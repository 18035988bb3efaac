import {MsgbusError, reasonOf} from '../util/errors.js'

/** A store's failure, in one line naming the folder and what failed, with Node's code (`ENOSPC`, `EACCES`) and the error as `cause`. */
export function historyFailure(dir: string, what: string, error: unknown): MsgbusError {
  if (error instanceof MsgbusError) return error
  return new MsgbusError('ERR_MSGBUS_HISTORY_FAILED', `history dir ${dir}: cannot ${what}: ${reasonOf(error)}`, {cause: error})
}
