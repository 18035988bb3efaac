import {EventEmitter} from 'node:events'
import {setTimeout as sleep} from 'node:timers/promises'
import {request, type Dispatcher} from 'undici'
import {compareMessageIds, isMessageId} from '../bus/message-id.js'
import {readDisconnect, type Disconnect, type DisconnectReason} from '../protocol/disconnect.js'
import {GAP_REASONS, readGap, type Gap, type GapReason} from '../protocol/gap.js'
import {boundaryOf, MultipartParser, type MultipartLimits, type Part} from '../protocol/multipart-parser.js'
import {parsePosition, positionParam, type Position} from '../protocol/position.js'
import {bodyChunks} from './body-chunks.js'
import {ClientError, describeFailure, dispatcherFor, isRetryable, statusError} from './http.js'
import {partToMessage, type ReceivedMessage} from './message.js'
import {backoffDelay} from './retry.js'
import {resolveTarget, type ClientOptions, type Target} from './target.js'

export interface SubscribeOptions extends ClientOptions, MultipartLimits {
  /** Media type patterns, e.g. `text/*,image/*` (sent to the server). */
  type?: string
  /** Sender patterns, e.g. `alice,b*` (sent to the server). */
  sender?: string
  signal?: AbortSignal
  /** Reconnect when the stream ends or fails. Default true. */
  reconnect?: boolean
  /** First reconnect delay; it doubles up to maxDelayMs, with jitter. Default 250 ms. */
  minDelayMs?: number
  /** Default 30 s. */
  maxDelayMs?: number
  dispatcher?: Dispatcher
  /**
   * Where the subscription starts: a message id (the messages after it), a
   * time (unix ms or ISO 8601), a duration back from now (`10m`) or `all`
   * (everything the server keeps), then live. A string is read at once by
   * parsePosition (a bad one throws ERR_MSGBUS_POSITION_INVALID). Default: live only.
   */
  since?: string | Position
  /** One-shot: the messages kept since `since` (all of them without it), then the iteration ends. Never reconnects. */
  poll?: boolean
  /** Each reconnect asks for the messages after the last one yielded (`Last-Event-ID`), so none is lost while the server keeps them. Default true. */
  resume?: boolean
  /**
   * How long a connect waits for the response head (status and headers)
   * once its request is sent; then it fails like any other connect: retried
   * (resuming) when it reconnects, else thrown as `<url>: no response head
   * within N s`. 0: no limit. It overrides the dispatcher's own
   * headersTimeout; the stream after the head has no timeout at all.
   * Default 10 s (SUBSCRIBE_HEADERS_TIMEOUT_MS).
   */
  headersTimeoutMs?: number
}

/**
 * A msgbus server writes a subscription's head at once, before any message
 * (a replay comes after it): a head that has not come in 10 s is a connection
 * nobody will answer, such as one the cluster's primary accepted for a worker
 * that is dying, and undici's own 300 s would hang the subscriber that long.
 * 10 s is the server's own patience for a request's head (serve
 * --header-timeout) and undici's for the TCP and TLS connect; a live server
 * slower than that is overloaded, and a retry with backoff (resuming) costs
 * no messages.
 */
export const SUBSCRIBE_HEADERS_TIMEOUT_MS = 10_000

/** A gap event: messages asked for that will not come (see Gap). */
export interface GapInfo extends Gap {
  url: string
}

/**
 * Messages this subscription lost, as far as it can tell: a gap event (of
 * any reason: `dropped` says how many), or `reconnect`: a stream that broke
 * and was opened again with nothing to resume from (a server that gives no
 * ids, the 2007 msgbus; or `resume: false`), when whatever came between is
 * gone unseen.
 */
export interface LossInfo {
  url: string
  reason: GapReason | 'reconnect'
  /** How many messages, when known (`dropped`). */
  messages?: number
}

/** What a subscription has lost so far (see LossInfo). */
export interface Losses {
  /** Losses of any kind: gap events and reconnects with nothing to resume from. */
  events: number
  /** Messages known lost (what `dropped` gaps counted). */
  messages: number
  /** Losses whose size is not known (expired or unknown gaps, reconnects). */
  uncounted: number
}

export interface SubscriptionEvents {
  /**
   * The stream is open: every message published from now on will arrive.
   * When it resumes (or starts at `since`), `replayFrom` is the id the
   * server replays from (`Msgbus-Replay-From`), and `gap` why messages asked
   * for are gone (`Msgbus-Gap`); the `gap` event tells of those too.
   */
  connect: [info: {url: string; attempt: number; replayFrom?: string; gap?: GapReason}]
  /**
   * The stream ended (`error` unset: the server closed it) or failed.
   * `reason`: the server said why before it closed the stream (the
   * in-band disconnect event): `slow`, this subscriber fell too far behind;
   * `shutdown`, the server stops. `notice` is the event itself.
   */
  disconnect: [info: {url: string; error?: ClientError; received: number; reason?: DisconnectReason; notice?: Disconnect}]
  /** Waiting before the next attempt. */
  reconnect: [info: {url: string; attempt: number; delayMs: number}]
  /** Messages asked for that will not come: emitted once, in order among the messages (those after it follow). */
  gap: [info: GapInfo]
  /** Messages lost (see LossInfo): after each gap event, and when a stream is opened again with nothing to resume from. */
  loss: [info: LossInfo]
}

/** What a connection reads: a message, or an event (a gap, a disconnect notice) where it came in the stream. */
type Item = ReceivedMessage | {gap: Gap} | {disconnect: Disconnect}

/**
 * A subscription: an async iterable of messages that reconnects with
 * backoff (unless told not to), resuming after the last message it yielded,
 * and says what it does through events.
 *
 *     for await (const message of subscribe('foo')) console.log(message.body.toString())
 */
export class Subscription extends EventEmitter<SubscriptionEvents> implements AsyncIterable<ReceivedMessage> {
  readonly target: Target
  /** Messages received over all connections. */
  received = 0
  /** What it lost so far. */
  readonly losses: Losses = {events: 0, messages: 0, uncounted: 0}
  private readonly since: Position | undefined
  private last: string | undefined
  /** Where the server said the first stream starts (Msgbus-Replay-From): the resume point until a message has come. */
  private startedAfter: string | undefined
  /** The disconnect notice the current connection carried, if any. */
  private notice: Disconnect | undefined
  /** A connection has opened before: the next one may follow a loss. */
  private connected = false

  constructor(
    target: string,
    private readonly options: SubscribeOptions = {},
  ) {
    super()
    this.since = typeof options.since === 'string' ? parsePosition(options.since) : options.since
    this.target = resolveTarget(target, options)
    const params = this.target.url.searchParams
    if (options.type) params.set('type', options.type)
    if (options.sender) params.set('sender', options.sender)
    this.target.display = this.target.url.href
  }

  /** The id of the last message yielded: where the next connection resumes. Undefined before one, or from a server that gives no ids (the 2007 msgbus). */
  get lastId(): string | undefined {
    return this.last
  }

  private get headersTimeoutMs(): number {
    return this.options.headersTimeoutMs ?? SUBSCRIBE_HEADERS_TIMEOUT_MS
  }

  /** Where the next connection resumes: after the last message yielded, else where the first stream began; undefined when it cannot resume. */
  get resumesAfter(): string | undefined {
    return (this.options.resume ?? true) ? (this.last ?? this.startedAfter) : undefined
  }

  [Symbol.asyncIterator](): AsyncIterator<ReceivedMessage> {
    return this.run()
  }

  private async *run(): AsyncGenerator<ReceivedMessage> {
    const {signal, poll = false} = this.options
    const reconnect = !poll && (this.options.reconnect ?? true)
    const dispatcher = this.options.dispatcher ?? dispatcherFor(this.options)
    let attempt = 0
    try {
      while (!signal?.aborted) {
        let error: ClientError | undefined
        this.notice = undefined
        try {
          for await (const message of this.connectOnce(dispatcher, attempt)) {
            attempt = 0
            yield message
          }
        } catch (caught) {
          if (signal?.aborted) return
          error = describeFailure(this.target, caught, {headersTimedOut: `no response head within ${this.headersTimeoutMs / 1000} s`})
          // After the server said why it closes the stream, its end is that close, not a failure.
          if (this.cutNotice() && isRetryable(error)) error = undefined
          else if (!reconnect || !isRetryable(error)) {
            this.emit('disconnect', {url: this.target.display, error, received: this.received})
            throw error
          }
        }

        const cut = this.cutNotice()
        const notice = cut ? {reason: cut.reason, notice: cut} : {}
        this.emit('disconnect', {url: this.target.display, error, received: this.received, ...notice})
        if (!reconnect) return
        attempt++
        const delayMs = backoffDelay(attempt, {minDelayMs: this.options.minDelayMs, maxDelayMs: this.options.maxDelayMs ?? 30_000})
        this.emit('reconnect', {url: this.target.display, attempt, delayMs})
        try {
          await sleep(delayMs, undefined, {signal})
        } catch {
          return
        }
      }
    } finally {
      if (dispatcher && dispatcher !== this.options.dispatcher) await dispatcher.close()
    }
  }

  /**
   * The next connection's URL and headers: gap events in-band (`gaps=1`),
   * and where to start: after the last message yielded, else at `since`.
   */
  private request(): {url: URL; headers: Record<string, string>} {
    const url = new URL(this.target.url)
    const headers: Record<string, string> = {accept: 'multipart/x-mixed-replace, multipart/mixed;q=0.9, */*;q=0.1'}
    if (this.target.authorization) headers.authorization = this.target.authorization
    url.searchParams.set('gaps', '1')
    if (this.options.poll) url.searchParams.set('poll', '1')
    const after = this.last ?? this.startedAfter
    if (after === undefined) {
      if (this.since) url.searchParams.set('since', positionParam(this.since))
    } else if (this.options.resume ?? true) {
      headers['last-event-id'] = after
    }

    return {url, headers}
  }

  /** A part as a message, or as the event it carries (a gap, a disconnect notice); undefined for an event of another kind. */
  private itemOf(part: Part): Item | undefined {
    const event = part.headers['msgbus-event']
    if (event === undefined) return partToMessage(part, this.target.channel)
    const text = part.body.toString('utf8')
    if (event === 'disconnect') {
      // A reason this client does not know still ends the stream: the connection's end says so.
      const disconnect = readDisconnect(text)
      return disconnect && {disconnect}
    }

    if (event !== 'gap') return undefined
    const gap = readGap(text)
    if (!gap) throw new ClientError(`${this.target.display}: a gap event that is not one: ${JSON.stringify(text.slice(0, 200))}`, undefined, {code: 'ERR_MSGBUS_RESPONSE_INVALID'})
    return {gap}
  }

  /** The disconnect notice the connection just over carried (a method: it is set while the connection runs, out of sight of run()'s flow analysis). */
  private cutNotice(): Disconnect | undefined {
    return this.notice
  }

  private lose(info: LossInfo): void {
    this.losses.events++
    if (info.messages === undefined) this.losses.uncounted++
    else this.losses.messages += info.messages
    this.emit('loss', info)
  }

  /** Not newer than the last message yielded: a server never sends one again, but a duplicate must not reach the reader. */
  private isRepeat(message: ReceivedMessage): boolean {
    return this.last !== undefined && message.id !== undefined && isMessageId(message.id) && compareMessageIds(message.id, this.last) <= 0
  }

  /** One connection: its messages until the stream ends. */
  private async *connectOnce(dispatcher: Dispatcher | undefined, attempt: number): AsyncGenerator<ReceivedMessage> {
    const {url, headers} = this.request()
    // Opened again with no position: what was published since the last one broke is gone, unseen.
    const unresumed = this.connected && headers['last-event-id'] === undefined && !url.searchParams.has('since')
    // The stream is idle between messages by design (a multipart stream has no heartbeats) and is never
    // idle-closed by the server: a body timeout (undici's 300 s) would only cut quiet subscriptions. A peer
    // that is gone shows as the socket's end or error, or at last through TCP keep-alive (undici turns it on).
    const response = await request(url, {method: 'GET', headers, signal: this.options.signal, dispatcher, headersTimeout: this.headersTimeoutMs, bodyTimeout: 0})
    if (response.statusCode !== 200) throw await statusError(this.target, response.statusCode, response.body)
    const contentType = response.headers['content-type']
    const boundary = boundaryOf(Array.isArray(contentType) ? contentType[0] : contentType)
    if (!boundary) {
      // undici fails a body destroyed unread (RequestAbortedError): without a listener, an uncaught exception.
      response.body.on('error', () => {}).destroy()
      throw new ClientError(`${this.target.display}: not a multipart stream (Content-Type: ${contentType ?? 'none'})`, undefined, {code: 'ERR_MSGBUS_RESPONSE_INVALID'})
    }

    const resume = resumeHeaders(response.headers)
    // A stream that drops before its first message resumes from where it started, not from whenever it is back.
    if (this.startedAfter === undefined && resume.replayFrom !== undefined && isMessageId(resume.replayFrom)) this.startedAfter = resume.replayFrom
    this.emit('connect', {url: this.target.display, attempt, ...resume})
    if (unresumed) this.lose({url: this.target.display, reason: 'reconnect'})
    this.connected = true
    const batch: Item[] = []
    const parser = new MultipartParser(
      boundary,
      (part) => {
        const item = this.itemOf(part)
        if (item) batch.push(item)
      },
      this.options,
    )
    for await (const chunk of bodyChunks(response.body)) {
      let failure: unknown
      try {
        parser.write(chunk)
      } catch (error) {
        failure = error
      }

      // Messages parsed before a limit error are still delivered, then the error.
      for (const item of batch.splice(0)) {
        if ('gap' in item) {
          this.emit('gap', {url: this.target.display, ...item.gap})
          this.lose({url: this.target.display, reason: item.gap.reason, ...(item.gap.skipped === undefined ? {} : {messages: item.gap.skipped})})
          continue
        }

        if ('disconnect' in item) {
          this.notice = item.disconnect
          continue
        }

        if (this.isRepeat(item)) continue
        this.received++
        if (item.id !== undefined && isMessageId(item.id)) this.last = item.id
        yield item
      }

      if (failure) throw failure
    }
  }
}

/** What a resuming stream's head says: where the replay begins, and why messages are gone, if they are. */
function resumeHeaders(headers: Record<string, string | string[] | undefined>): {replayFrom?: string; gap?: GapReason} {
  const first = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value)
  const replayFrom = first(headers['msgbus-replay-from'])
  const gap = first(headers['msgbus-gap']) as GapReason | undefined
  return {...(replayFrom ? {replayFrom} : {}), ...(gap && GAP_REASONS.includes(gap) ? {gap} : {})}
}

export function subscribe(target: string, options: SubscribeOptions = {}): Subscription {
  return new Subscription(target, options)
}
