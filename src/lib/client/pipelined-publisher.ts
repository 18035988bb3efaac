import {EventEmitter} from 'node:events'
import {Client} from 'undici'
import {ClientError, describeFailure, isRetryable, statusError} from './http.js'
import {answerTimeoutOf, DEFAULT_TYPE, noAnswer, isSuccess, published, type PublishOptions, type Published} from './publish.js'
import {backoffDelay, retryAfterMs} from './retry.js'
import {resolveTarget, type Target} from './target.js'

export interface PipelinedPublisherOptions extends PublishOptions {
  /** Requests written before their answers come back. Default 32. */
  pipelining?: number
  /**
   * How long to keep trying to reach the server after a failure that can
   * heal (refused, reset, closed, a timeout, 408, 429, 5xx), counted from
   * the failure: 0 (the default) stops at the first, Infinity never gives up.
   */
  retryForMs?: number
  /**
   * Bytes of messages held (not yet acknowledged), each counted as its
   * length plus MESSAGE_OVERHEAD; past it, send() waits. Default 8 MiB.
   */
  maxBufferBytes?: number
  /** First reconnect delay; it doubles up to maxDelayMs, with jitter. Default 250 ms. */
  minDelayMs?: number
  /** Default 5 s. */
  maxDelayMs?: number
  /** Called with each message's answer, in order; the same as the `published` event. */
  onPublished?: (result: Published) => void
}

export interface PublisherStats {
  /** Messages the server acknowledged. */
  sent: number
  /** Messages written to a connection that broke before their answer came, and so sent again: each may have arrived twice. */
  retried: number
  /** Messages given to send() that were not acknowledged: refused, or held when the publisher stopped. */
  lost: number
}

export interface PublisherEvents {
  /** A message acknowledged; `index` counts send() calls from 1. */
  published: [result: Published & {index: number}]
  /** A message the server refused for itself (413: too large): lost; the others go on. */
  refused: [info: {index: number; error: ClientError}]
  /** The connection failed (or could not be made), with `held` messages not acknowledged; retrying begins. */
  disconnect: [info: {error: ClientError; held: number}]
  /** Waiting before the next attempt. */
  retry: [info: {attempt: number; delayMs: number; error: ClientError}]
  /** The server answers again after a disconnect. */
  connect: [info: {downMs: number; attempts: number}]
  /** The buffer is full while the server cannot be reached: send() waits for room. */
  full: [info: {bytes: number; held: number}]
  /** Stopped for good (see `error`): what it held is lost, and send() throws. */
  stop: [error: ClientError]
}

/** What holding a message costs besides its body (the entry, its headers, the request): so that empty messages count too. */
export const MESSAGE_OVERHEAD = 64

/** The statuses that refuse one message for what it is; any other refusal would refuse them all. */
const REFUSES_ONE = new Set([413])

interface Entry {
  body: Buffer
  index: number
  /** Answered: acknowledged or refused. */
  done: boolean
  /** The connection it was last written to. */
  writtenOn?: Connection
  retried: boolean
}

interface Connection {
  client: Client
  /** The socket was open: what was written to it may have reached the server. */
  connected: boolean
  inFlight: number
  /** Failed: what is in flight will be sent again on the next one. */
  broken: boolean
}

/**
 * Publishes a sequence of messages over one keep-alive connection,
 * pipelined (each written as it comes, without waiting for the previous
 * answer; the answers come back in order), and rides out a server restart:
 * what it holds (up to maxBufferBytes) waits through the outage, and the
 * messages written to a connection that broke are sent again on the next
 * (at least once: one the server took just before the break arrives twice).
 * For `send --lines`.
 */
export class PipelinedPublisher extends EventEmitter<PublisherEvents> {
  private readonly target: Target
  private readonly path: string
  private readonly headers: Record<string, string>
  private readonly pipelining: number
  private readonly maxBufferBytes: number
  /** A connection whose answer has not come in this long is broken: what it had in flight is sent again on the next. */
  private readonly answerTimeoutMs: number
  private retryForMs: number
  /** Not yet acknowledged, in order; done ones are dropped from the head. */
  private queue: Entry[] = []
  /** Entries of queue before this one are all done: dropped now and then, not one by one (that would be quadratic). */
  private head = 0
  private heldCount = 0
  /** The first entry of queue not yet written to the current connection. */
  private next = 0
  private heldBytes = 0
  private count = 0
  private connection: Connection | undefined
  /** Set while waiting to reconnect. */
  private timer: NodeJS.Timeout | undefined
  private graceTimer: NodeJS.Timeout | undefined
  /** When the current outage began, if the server is unreachable. */
  private downSince: number | undefined
  private attempts = 0
  private retryAfter: number | undefined
  private lastError: ClientError | undefined
  private fullReported = false
  private failure: ClientError | undefined
  private roomWaiters: Array<() => void> = []
  private idleWaiters: Array<() => void> = []
  readonly stats: PublisherStats = {sent: 0, retried: 0, lost: 0}

  constructor(
    target: string,
    private readonly options: PipelinedPublisherOptions = {},
  ) {
    super()
    this.target = resolveTarget(target, options)
    if (this.target.channel === '') throw new ClientError(`${this.target.display}: name a channel to publish to`, undefined, {code: 'ERR_MSGBUS_TARGET_INVALID'})
    this.path = this.target.url.pathname + this.target.url.search
    this.headers = {'content-type': options.type ?? DEFAULT_TYPE}
    if (this.target.authorization) this.headers.authorization = this.target.authorization
    this.pipelining = options.pipelining ?? 32
    this.maxBufferBytes = options.maxBufferBytes ?? 8 * 1024 * 1024
    this.retryForMs = options.retryForMs ?? 0
    this.answerTimeoutMs = answerTimeoutOf(options)
    options.signal?.addEventListener('abort', () => this.stop(new ClientError(`${this.target.display}: aborted`, undefined, {cause: options.signal?.reason})), {once: true})
  }

  /** The failure that stopped it, if any. */
  get error(): ClientError | undefined {
    return this.failure
  }

  /** Messages held: given to send() and not yet acknowledged. */
  get held(): number {
    return this.heldCount
  }

  /** Sends one message; resolves once there is room in the buffer for another. Throws once the publisher has stopped. */
  async send(body: Buffer | string): Promise<void> {
    if (this.failure) throw this.failure
    const entry: Entry = {body: typeof body === 'string' ? Buffer.from(body) : body, index: ++this.count, done: false, retried: false}
    this.queue.push(entry)
    this.heldCount++
    this.heldBytes += entry.body.length + MESSAGE_OVERHEAD
    this.pump()
    if (this.heldBytes < this.maxBufferBytes) return
    this.reportFull()
    await new Promise<void>((resolve) => this.roomWaiters.push(resolve))
    if (this.failure) throw this.failure
  }

  /**
   * Waits until every message held is acknowledged (or the publisher
   * stops), closes the connection and resolves with the stats; throws the
   * failure that stopped it, if one did. `giveUpAfterMs` bounds the wait and
   * ends retrying (for an interrupted sender): what is still held then is lost.
   */
  async close({giveUpAfterMs}: {giveUpAfterMs?: number} = {}): Promise<PublisherStats> {
    if (giveUpAfterMs !== undefined) this.giveUpAfter(giveUpAfterMs)
    if (!this.failure && this.heldCount > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
    clearTimeout(this.graceTimer)
    const connection = this.connection
    this.connection = undefined
    if (connection && !connection.client.destroyed) await connection.client.close().catch(() => {})
    if (this.failure) throw this.failure
    return this.stats
  }

  /**
   * For an interrupted sender: retries no more, and stops (what is held
   * then is lost) at once if the server is away, else in `ms` unless
   * everything is acknowledged by then. send() still takes messages
   * meanwhile, so that what the caller had already read can go too.
   */
  giveUpAfter(ms: number): void {
    if (this.failure || this.graceTimer !== undefined) return
    this.retryForMs = 0
    if (this.downSince !== undefined && this.heldCount > 0) this.stop(this.lastError ?? new ClientError(`${this.target.display}: not reachable`))
    else this.graceTimer = setTimeout(() => this.stop(new ClientError(`${this.target.display}: no answer in time`)), ms)
  }

  /** Writes what is held to the connection, opening one if need be, as far as the pipeline allows. */
  private pump(): void {
    if (this.failure || this.timer !== undefined) return
    while (this.next < this.queue.length) {
      const connection = (this.connection ??= this.connect())
      if (connection.broken || connection.inFlight >= this.pipelining) return
      const entry = this.queue[this.next++]
      if (!entry.done) this.write(connection, entry)
    }
  }

  private connect(): Connection {
    const client = new Client(this.target.url.origin, {
      pipelining: this.pipelining,
      connect: {ca: this.options.ca, rejectUnauthorized: !this.options.insecure},
    })
    const connection: Connection = {client, connected: false, inFlight: 0, broken: false}
    client.on('connect', () => {
      connection.connected = true
    })
    return connection
  }

  private write(connection: Connection, entry: Entry): void {
    connection.inFlight++
    entry.writtenOn = connection
    // undici pipelines only requests marked idempotent and not blocking: a POST
    // is neither by default, so each would wait for the previous answer.
    connection.client
      .request({path: this.path, method: 'POST', headers: this.headers, body: entry.body, idempotent: true, blocking: false, headersTimeout: this.answerTimeoutMs})
      .then(
        async (response) => {
          // The server closes after this answer (as ours does after a 413): undici would send what is
          // pipelined behind it again by itself, unseen; this does it instead, and counts it.
          if (/\bclose\b/i.test(String(response.headers.connection ?? ''))) this.rotate(connection)
          if (isSuccess(response.statusCode)) {
            this.reachable(connection)
            const [result] = published(response.headers, 1)
            response.body.dump().catch(() => {})
            this.finish(entry, true)
            this.options.onPublished?.(result)
            this.emit('published', {id: result.id, subscribers: result.subscribers, index: entry.index})
            return
          }

          const retryAfter = retryAfterMs(response.headers['retry-after'])
          const error = await statusError(this.target, response.statusCode, response.body)
          if (REFUSES_ONE.has(response.statusCode)) {
            this.reachable(connection)
            this.finish(entry, false)
            this.emit('refused', {index: entry.index, error})
          } else if (isRetryable(error)) {
            this.break(connection, error, retryAfter)
          } else {
            this.stop(error)
          }
        },
        (caught: unknown) => {
          // What a break or a stop destroys fails too: that is expected.
          if (connection.broken || this.failure) return
          const error = describeFailure(this.target, caught, noAnswer(this.answerTimeoutMs))
          if (isRetryable(error)) this.break(connection, error)
          else this.stop(error)
        },
      )
      .catch((error: unknown) => this.stop(describeFailure(this.target, error)))
      .finally(() => {
        connection.inFlight--
        if (connection.broken) {
          if (connection.inFlight === 0 && this.connection === connection) this.reconnectLater()
        } else {
          this.pump()
        }
      })
  }

  /** The server took or judged a message: an outage, if there was one, is over (not at a 503: that is the outage; nor at a late answer on a broken connection). */
  private reachable(connection: Connection): void {
    if (connection.broken) return
    if (this.downSince !== undefined) this.emit('connect', {downMs: Date.now() - this.downSince, attempts: this.attempts})
    this.downSince = undefined
    this.attempts = 0
  }

  private finish(entry: Entry, acknowledged: boolean): void {
    // Stopped meanwhile: already counted as lost.
    if (entry.done) return
    entry.done = true
    if (acknowledged) this.stats.sent++
    else this.stats.lost++
    this.heldBytes -= entry.body.length + MESSAGE_OVERHEAD
    this.heldCount--
    while (this.head < this.queue.length && this.queue[this.head].done) this.head++
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.next = Math.max(0, this.next - this.head)
      this.head = 0
    }

    this.wake()
  }

  /** Resolves send()s waiting for room, and close() once nothing is held. */
  private wake(): void {
    if (this.heldBytes < this.maxBufferBytes || this.failure) {
      this.fullReported = false
      for (const resolve of this.roomWaiters.splice(0)) resolve()
    }

    if (this.heldCount === 0 || this.failure) for (const resolve of this.idleWaiters.splice(0)) resolve()
  }

  private reportFull(): void {
    if (this.fullReported || this.downSince === undefined || this.heldBytes < this.maxBufferBytes) return
    this.fullReported = true
    this.emit('full', {bytes: this.heldBytes, held: this.heldCount})
  }

  /** The server ends the connection by design: open the next one at once, and send again what was in flight. */
  private rotate(connection: Connection): void {
    if (connection.broken) return
    connection.broken = true
    connection.client.destroy().catch(() => {})
  }

  /** The connection failed in a way that can heal: drop it, and send what it had in flight again on the next. */
  private break(connection: Connection, error: ClientError, retryAfter?: number): void {
    if (connection.broken) return
    connection.broken = true
    connection.client.destroy().catch(() => {})
    this.lastError = error
    this.retryAfter = retryAfter
    if (this.downSince === undefined) {
      this.downSince = Date.now()
      this.emit('disconnect', {error, held: this.heldCount})
    }

    this.reportFull()
  }

  /** Once all a broken connection had in flight has failed: wait, then start again with the first message not acknowledged. */
  private reconnectLater(): void {
    this.connection = undefined
    this.queue = this.queue.filter((entry) => !entry.done)
    this.head = 0
    for (const entry of this.queue) {
      // Not what was given to a connection that never opened: that was never on the wire.
      if (entry.writtenOn?.connected && !entry.retried) {
        entry.retried = true
        this.stats.retried++
      }
    }

    this.next = 0
    // All answered after all (a 503, then the rest acknowledged): nothing to retry until the next send().
    if (this.queue.length === 0) return
    if (this.downSince === undefined) {
      this.pump()
      return
    }

    const error = this.lastError!
    const left = (this.downSince ?? Date.now()) + this.retryForMs - Date.now()
    if (left <= 0) {
      this.stop(this.retryForMs > 0 ? new ClientError(`${error.message} (gave up after retrying for ${Math.round((Date.now() - this.downSince!) / 1000)} s)`, error.status, {cause: error}) : error)
      return
    }

    this.attempts++
    const delayMs = Math.min(left, Math.max(backoffDelay(this.attempts, this.options), this.retryAfter ?? 0))
    this.emit('retry', {attempt: this.attempts, delayMs, error})
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.pump()
    }, delayMs)
  }

  /** Stops for good: what is held is lost, send() and close() throw `error`. */
  private stop(error: ClientError): void {
    if (this.failure) return
    this.failure = error
    clearTimeout(this.timer)
    this.timer = undefined
    for (const entry of this.queue) {
      if (entry.done) continue
      entry.done = true
      this.stats.lost++
    }

    this.queue = []
    this.head = 0
    this.heldCount = 0
    this.heldBytes = 0
    this.connection?.client.destroy().catch(() => {})
    this.wake()
    this.emit('stop', error)
  }
}
