import type {IncomingMessage, ServerResponse} from 'node:http'
import type {Bus, Delivery} from '../../bus/bus.js'
import {mediaTypeOrReason} from '../../protocol/media-type.js'
import {declaredLength, readBody, tooLarge} from './body.js'
import {peerOf} from '../http/peer.js'
import {readForm, type FormLimits} from './form.js'
import {HttpError} from '../http/http-error.js'
import type {BodyBudget} from './body-budget.js'
import type {BodyStalls} from './body-stalls.js'
import type {AnswerCork} from '../http/answer-cork.js'
import {LogLevel, type Logger} from '../ops/log.js'
import {MsgbusError} from '../../util/errors.js'
import type {LatencyBuckets} from '../ops/latency-buckets.js'

/** What a publish needs: the bus, the limits on bodies, and where to log. */
export interface PublishContext {
  readonly bus: Bus
  readonly limits: FormLimits
  /** Drops a connection whose body stalls (`--body-timeout`). */
  readonly stalls: BodyStalls
  /** Sends the answers of pipelined publishes together. */
  readonly answerCork: AnswerCork
  /** Memory held by request bodies still arriving (`--max-body-memory`). */
  readonly bodyBudget: BodyBudget
  readonly logger: Logger
  readonly serverHeader: string
  /** Each accepted publish's time to its answer, in seconds. */
  readonly latency: LatencyBuckets
  /** Undefined, or a promise to wait for before answering: subscribers' sockets have much to catch up with (SocketWriter.whenFlushed). */
  readonly flushed: () => Promise<void> | undefined
}

/**
 * What the bus made of a publish, as the answer: a message the history store
 * could not write (`--history-dir`: a full disk) is a 500 that says so, in
 * one line (the store has logged it): its subscribers have it, the history
 * does not. One the bus's link could not publish is a 503. Anything else
 * (the body's own refusals) as it is.
 */
function asHttpError(error: unknown): unknown {
  if (error instanceof MsgbusError && error.code === 'ERR_MSGBUS_HISTORY_FAILED') return new HttpError(500, error.message, {}, false, {cause: error})
  // Not published at all: the shared log is out of reach (a worker's primary, Redis); a publisher may try again.
  if (error instanceof MsgbusError && error.code === 'ERR_MSGBUS_LINK_DOWN') return new HttpError(503, error.message, {'Retry-After': '1'}, false, {cause: error})
  return error
}

/**
 * POST on a bus URL, once the gate has let it through (gate.ts): one
 * message, or one per part of a multipart/form-data body. Everything that
 * can be refused is refused before `100 Continue`.
 */
export async function publish(
  ctx: PublishContext,
  req: IncomingMessage,
  res: ServerResponse,
  channel: string,
  sender: string | undefined,
  expectsContinue: boolean,
): Promise<void> {
  const started = performance.now()
  const header = req.headers['content-type']
  if (header === undefined) throw new HttpError(400, 'a message needs a Content-Type')
  const media = mediaTypeOrReason(header)
  if (typeof media === 'string') throw new HttpError(400, `not a media type: ${media}`)
  const isForm = media.essence === 'multipart/form-data'
  const limit = isForm ? ctx.limits.maxRequestSize : ctx.limits.maxMessageSize
  const length = declaredLength(req)
  if (length !== undefined && length > limit) throw tooLarge(limit, isForm ? 'form' : 'message')
  ctx.bodyBudget.admit(length)
  if (expectsContinue) res.writeContinue()

  let deliveries: Delivery[]
  const stopWatching = ctx.stalls.watch(req)
  try {
    if (isForm) {
      const parts = await readForm(req, ctx.limits, ctx.bodyBudget)
      stopWatching()
      if (!parts) return
      deliveries = await ctx.bus.publishAll(parts.map((part) => ({channel, type: part.full, essence: part.essence, sender, body: part.body})))
    } else {
      const body = await readBody(req, limit, ctx.bodyBudget)
      stopWatching()
      if (!body) return
      deliveries = [await ctx.bus.publish({channel, type: media.full, essence: media.essence, sender, body})]
    }
  } catch (error) {
    // A catch here rather than a .catch() on the publish: one promise fewer for every publish.
    throw asHttpError(error)
  } finally {
    stopWatching()
  }

  // Handed to every subscriber means queued for its socket: a publisher that
  // outruns the sockets waits here, so what it has queued ahead stays bounded.
  const flushed = ctx.flushed()
  if (flushed) await flushed
  ctx.answerCork.beforeAnswer(req.socket)
  // Server was set with the request (router.ts): naming it here again cost every publish one more setHeader.
  res.writeHead(204, {
    'Msgbus-Id': deliveries.map((d) => d.message.id).join(', '),
    'Msgbus-Subscribers': deliveries.map((d) => d.subscribers).join(', '),
  })
  res.end()
  ctx.latency.observe((performance.now() - started) / 1000)
  if (ctx.logger.level >= LogLevel.Publishes) {
    for (const {message, subscribers} of deliveries) {
      ctx.logger.log(
        LogLevel.Publishes,
        'publish',
        `${peerOf(req.socket)} ${channel} ${message.type} ${message.body.length} bytes id=${message.id} from=${sender ?? '-'} to ${subscribers}`,
        {peer: peerOf(req.socket), channel, type: message.type, bytes: message.body.length, id: message.id, user: sender, subscribers},
      )
    }
  }
}
