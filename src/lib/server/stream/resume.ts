import type {IncomingMessage} from 'node:http'
import {isMessageId} from '../../bus/message-id.js'
import type {MessageLog, Resolution} from '../../history/message-log.js'
import type {Gap} from '../../protocol/gap.js'
import {parsePosition, type Position} from '../../protocol/position.js'
import {messageOf} from '../../util/errors.js'
import {HttpError} from '../http/http-error.js'

/** What a subscription asks of the history: where from, whether it is a one-shot read, whether multipart carries gap parts. */
export interface ResumeRequest {
  position: Position | undefined
  poll: boolean
  gapParts: boolean
}

/**
 * Where the subscription resumes, if anywhere: the `Last-Event-ID` header
 * (what an EventSource sends when it reconnects by itself, so it wins over
 * the URL it reconnects to), else `?last_event_id=`, else `?since=`.
 */
function positionOf(req: IncomingMessage, params: URLSearchParams): Position | undefined {
  const header = req.headers['last-event-id']
  const lastId = (Array.isArray(header) ? header[0] : header) || params.get('last_event_id')
  if (lastId) {
    if (!isMessageId(lastId)) throw new HttpError(400, `Last-Event-ID ${JSON.stringify(lastId.slice(0, 64))} is not a message id (<unix-ms>-<seq>)`)
    return {kind: 'id', id: lastId}
  }

  const since = params.get('since')
  if (since === null || since === '') return undefined
  try {
    return parsePosition(since)
  } catch (error) {
    throw new HttpError(400, `since: ${messageOf(error)}`, {}, false, {cause: error})
  }
}

/** A yes-or-no query parameter: absent, `0` or `false` is no; empty, `1` or `true` is yes; anything else a 400. */
function switchParam(params: URLSearchParams, name: string): boolean {
  const value = params.get(name)
  if (value === null || value === '0' || value === 'false') return false
  if (value === '' || value === '1' || value === 'true') return true
  throw new HttpError(400, `${name}=${JSON.stringify(value.slice(0, 64))}: say 1 or 0`)
}

/** The headers that tell a resuming client where its replay really begins, and whether messages it asked for are gone. */
export function resumeHeaders(resolution: Resolution): Record<string, string> {
  return resolution.gap ? {'Msgbus-Replay-From': resolution.from, 'Msgbus-Gap': resolution.gap} : {'Msgbus-Replay-From': resolution.from}
}

/** Reads the request's resume parameters; a bad one is a 400. A poll without a position is the whole backlog. */
export function resumeRequest(req: IncomingMessage, params: URLSearchParams): ResumeRequest {
  const poll = switchParam(params, 'poll')
  const gapParts = switchParam(params, 'gaps')
  return {position: positionOf(req, params) ?? (poll ? {kind: 'all'} : undefined), poll, gapParts}
}

/**
 * Where the stream begins in the log. Without a position, after the newest
 * message: any published before the stream starts (behind a pipelined
 * request) are replayed.
 */
export function resolve(log: MessageLog, position: Position | undefined): Resolution {
  return position ? log.resolve(position) : {start: log.end, from: log.newest}
}

/** The gap event a stream opens with, if its position is not all there. */
export function openingGap(resolution: Resolution, position: Position | undefined): Gap | undefined {
  return resolution.gap && {reason: resolution.gap, after: position?.kind === 'id' ? position.id : null, from: resolution.from}
}
