import type {Readable} from 'node:stream'
import {FormData, request, type Dispatcher} from 'undici'
import {ClientError, describeFailure, dispatcherFor, statusError} from './http.js'
import {resolveTarget, type ClientOptions, type Target} from './target.js'

export const DEFAULT_TYPE = 'text/plain; charset=utf-8'

export interface PublishOptions extends ClientOptions {
  /** The message's media type. Default text/plain; charset=utf-8. */
  type?: string
  signal?: AbortSignal
  dispatcher?: Dispatcher
  /**
   * How long a publish waits for the server's answer once its request is
   * written; then it fails as `<url>: no answer within N s (the message may
   * have been published)`, a failure that can heal (PipelinedPublisher sends
   * it again). 0: no limit. Default 30 s (PUBLISH_ANSWER_TIMEOUT_MS).
   */
  answerTimeoutMs?: number
}

/**
 * A msgbus server answers a publish once the message is queued: at once,
 * unless more than 4 MiB already waits to be flushed to subscribers
 * (FLUSH_BACKLOG), when it holds the answer until that is written, which on
 * a healthy server takes well under a second. An answer that has not come in
 * 30 s is a connection nobody will answer, such as one the cluster's primary
 * accepted for a worker that is dying (undici's own 300 s would hang the
 * sender, and `send --lines` with its lines held, that long); 30 s leaves a
 * loaded server 30 times its worst healthy delay. It is undici's headers
 * timeout (undici 7, client-h1.js): it fires only once the body is written,
 * or while the write is stuck (the socket not draining) or others are
 * pipelined behind it, and it is refreshed each time a chunk of the body
 * fills the socket and when the body ends, so a long upload that keeps going
 * does not trip it: it counts from the body's end.
 */
export const PUBLISH_ANSWER_TIMEOUT_MS = 30_000

/** The request's headers timeout for `answerTimeoutMs`. */
export function answerTimeoutOf(options: PublishOptions): number {
  return options.answerTimeoutMs ?? PUBLISH_ANSWER_TIMEOUT_MS
}

/** describeFailure's reason when a publish's answer did not come in `ms`. */
export function noAnswer(ms: number): {headersTimedOut: string} {
  return {headersTimedOut: `no answer within ${ms / 1000} s (the message may have been published)`}
}

/**
 * What the server said of one published message. A server that names no id
 * (the 2007 msgbus answers a publish with a bare 204) leaves both undefined:
 * its 2xx is still a success.
 */
export interface Published {
  id?: string
  /** How many subscriptions it was handed to. */
  subscribers?: number
}

export interface FilePart {
  body: Buffer
  type: string
  /** The file's name: the server adds it to the message's type as its `name` parameter. */
  name?: string
}

function headerList(value: string | string[] | undefined): string[] {
  const text = Array.isArray(value) ? value.join(',') : (value ?? '')
  return text.split(',').map((item) => item.trim()).filter(Boolean)
}

/** Reads Msgbus-Id and Msgbus-Subscribers, one entry per message of the `count` sent; without them, `count` entries that say nothing. */
export function published(headers: Record<string, string | string[] | undefined>, count: number): Published[] {
  const ids = headerList(headers['msgbus-id'])
  if (ids.length === 0) return Array.from({length: count}, () => ({}))
  const counts = headerList(headers['msgbus-subscribers'])
  return ids.map((id, i) => ({id, subscribers: Number(counts[i] ?? 0)}))
}

export function isSuccess(status: number): boolean {
  return status >= 200 && status < 300
}

async function post(target: Target, headers: Record<string, string>, body: Dispatcher.DispatchOptions['body'] | FormData, count: number, options: PublishOptions): Promise<Published[]> {
  if (target.channel === '') throw new ClientError(`${target.display}: name a channel to publish to`, undefined, {code: 'ERR_MSGBUS_TARGET_INVALID'})
  if (target.authorization) headers.authorization = target.authorization
  const dispatcher = options.dispatcher ?? dispatcherFor(options)
  const answerTimeoutMs = answerTimeoutOf(options)
  try {
    const response = await request(target.url, {method: 'POST', headers, body, signal: options.signal, dispatcher, headersTimeout: answerTimeoutMs})
    if (!isSuccess(response.statusCode)) throw await statusError(target, response.statusCode, response.body)
    await response.body.dump()
    return published(response.headers, count)
  } catch (error) {
    throw describeFailure(target, error, noAnswer(answerTimeoutMs))
  } finally {
    if (dispatcher && dispatcher !== options.dispatcher) await dispatcher.close()
  }
}

/** Publishes one message; resolves with its id and how many subscribers got it. */
export async function publish(target: string, body: Buffer | string | Readable, options: PublishOptions = {}): Promise<Published> {
  const resolved = resolveTarget(target, options)
  const [result] = await post(resolved, {'content-type': options.type ?? DEFAULT_TYPE}, body, 1, options)
  return result
}

/**
 * A form part's type as sent. A part without a file name is a form field,
 * which the server reads as latin1 (byte for byte) unless the part names a
 * charset; UTF-8 text named as such would come out re-encoded. Text sent
 * without its charset arrives as text/plain; charset=utf-8 all the same:
 * the server labels its text fields so.
 */
function formPartType(part: FilePart): string {
  return part.name ? part.type : part.type.replace(/^(text\/[^;]+);\s*charset="?utf-8"?\s*$/i, '$1')
}

/** Publishes several messages in one multipart/form-data request: all or none, in order. */
export async function publishAll(target: string, parts: FilePart[], options: PublishOptions = {}): Promise<Published[]> {
  const resolved = resolveTarget(target, options)
  const form = new FormData()
  parts.forEach((part, i) => form.append(`m${i}`, new Blob([part.body], {type: formPartType(part)}), part.name ?? ''))
  const results = await post(resolved, {}, form, parts.length, options)
  if (results.length !== parts.length) throw new ClientError(`${resolved.display}: ${parts.length} messages sent, ${results.length} acknowledged`, undefined, {code: 'ERR_MSGBUS_RESPONSE_INVALID'})
  return results
}
