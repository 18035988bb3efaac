import {isMessageId} from '../bus/message-id.js'
import {parseDuration} from '../util/duration.js'
import {MsgbusError} from '../util/errors.js'

/**
 * Where a subscription resumes: after a message id, from a time on, or from
 * the oldest message kept. A duration (`10m`) is a time, counted back from
 * when it was read.
 */
export type Position = {kind: 'id'; id: string} | {kind: 'time'; time: number} | {kind: 'all'}

const UNIX_MS = /^\d{1,16}$/
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i

/**
 * Reads a position as `?since=` and `msgbus dump --since` take it: a message
 * id (`1795764040540-3`: the messages after it), a time in unix milliseconds
 * (`1795764040540`) or ISO 8601 (`2026-12-02T10:00:00Z`; without a zone, UTC; a
 * date alone is midnight UTC), a duration back from now with its unit (`90s`, `10m`,
 * `1h30m`), or `all` (everything kept). Throws a MsgbusError,
 * ERR_MSGBUS_POSITION_INVALID, with a one-line reason.
 */
export function parsePosition(text: string, now: number = Date.now()): Position {
  const value = text.trim()
  if (value.toLowerCase() === 'all') return {kind: 'all'}
  if (isMessageId(value)) return {kind: 'id', id: value}
  if (UNIX_MS.test(value)) return {kind: 'time', time: Number(value)}
  if (ISO_DATE.test(value)) {
    // Without a zone it is UTC, as a date alone is: never the server's local time, which the client does not know.
    const zoned = /T|\s/.test(value) && !/(?:Z|[+-]\d{2}:?\d{2})$/i.test(value) ? `${value}Z` : value
    const time = Date.parse(zoned.replace(' ', 'T'))
    if (Number.isFinite(time)) return {kind: 'time', time}
  } else if (/^[\d.]+[a-z]/i.test(value)) {
    try {
      return {kind: 'time', time: now - parseDuration(value)}
    } catch {
      // Falls through to the one message that names every form.
    }
  }

  throw new MsgbusError(
    'ERR_MSGBUS_POSITION_INVALID',
    `not a position: ${JSON.stringify(text.slice(0, 64))} (a message id <unix-ms>-<seq>, a time in unix ms or ISO 8601, a duration such as 10m, or all)`,
  )
}

/** A position as `?since=` takes it back: the id, the time in unix ms, or `all`. */
export function positionParam(position: Position): string {
  return position.kind === 'id' ? position.id : position.kind === 'time' ? String(position.time) : 'all'
}
