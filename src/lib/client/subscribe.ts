import {EventEmitter} from 'node:events'
import {setTimeout as sleep} from 'node:timers/promises'
import {request, type Dispatcher} from 'undici'
import {boundaryOf, MultipartParser, type MultipartLimits} from '../protocol/multipart-parser.js'
import {ClientError, describeFailure, dispatcherFor, statusError} from './http.js'
import {partToMessage, type ReceivedMessage} from './message.js'
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
}

export interface SubscriptionEvents {
  /** The stream is open: every message published from now on will arrive. */
  connect: [info: {url: string; attempt: number}]
  /** The stream ended (`error` unset: the server closed it) or failed. */
  disconnect: [info: {url: string; error?: ClientError; received: number}]
  /** Waiting before the next attempt. */
  reconnect: [info: {url: string; attempt: number; delayMs: number}]
}

/** Statuses worth retrying: the server is there but busy or restarting. */
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504])

/**
 * A subscription: an async iterable of messages that reconnects with
 * backoff (unless told not to) and says what it does through events.
 *
 *     for await (const message of subscribe('foo')) console.log(message.body.toString())
 */
export class Subscription extends EventEmitter<SubscriptionEvents> implements AsyncIterable<ReceivedMessage> {
  readonly target: Target
  /** Messages received over all connections. */
  received = 0

  constructor(
    target: string,
    private readonly options: SubscribeOptions = {},
  ) {
    super()
    this.target = resolveTarget(target, options)
    const params = this.target.url.searchParams
    if (options.type) params.set('type', options.type)
    if (options.sender) params.set('sender', options.sender)
    this.target.display = this.target.url.href
  }

  [Symbol.asyncIterator](): AsyncIterator<ReceivedMessage> {
    return this.run()
  }

  private async *run(): AsyncGenerator<ReceivedMessage> {
    const {signal, reconnect = true} = this.options
    const dispatcher = this.options.dispatcher ?? dispatcherFor(this.options)
    let attempt = 0
    try {
      while (!signal?.aborted) {
        let error: ClientError | undefined
        try {
          for await (const message of this.connectOnce(dispatcher, attempt)) {
            attempt = 0
            yield message
          }
        } catch (caught) {
          if (signal?.aborted) return
          error = describeFailure(this.target, caught)
          const permanent = error.status !== undefined && !RETRYABLE.has(error.status)
          if (permanent || !reconnect) {
            this.emit('disconnect', {url: this.target.display, error, received: this.received})
            throw error
          }
        }

        this.emit('disconnect', {url: this.target.display, error, received: this.received})
        if (!reconnect) return
        attempt++
        const base = Math.min(this.options.maxDelayMs ?? 30_000, (this.options.minDelayMs ?? 250) * 2 ** Math.min(attempt - 1, 16))
        const delayMs = Math.round(base / 2 + Math.random() * (base / 2))
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

  /** One connection: its messages until the stream ends. */
  private async *connectOnce(dispatcher: Dispatcher | undefined, attempt: number): AsyncGenerator<ReceivedMessage> {
    const headers: Record<string, string> = {accept: 'multipart/x-mixed-replace, multipart/mixed;q=0.9, */*;q=0.1'}
    if (this.target.authorization) headers.authorization = this.target.authorization
    const response = await request(this.target.url, {method: 'GET', headers, signal: this.options.signal, dispatcher})
    if (response.statusCode !== 200) throw await statusError(this.target, response.statusCode, response.body)
    const contentType = response.headers['content-type']
    const boundary = boundaryOf(Array.isArray(contentType) ? contentType[0] : contentType)
    if (!boundary) {
      // undici fails a body destroyed unread (RequestAbortedError): without a listener, an uncaught exception.
      response.body.on('error', () => {}).destroy()
      throw new ClientError(`${this.target.display}: not a multipart stream (Content-Type: ${contentType ?? 'none'})`, undefined, {code: 'ERR_MSGBUS_RESPONSE_INVALID'})
    }

    this.emit('connect', {url: this.target.display, attempt})
    const batch: ReceivedMessage[] = []
    const parser = new MultipartParser(boundary, (part) => batch.push(partToMessage(part, this.target.channel)), this.options)
    for await (const chunk of response.body) {
      let failure: unknown
      try {
        parser.write(chunk as Buffer)
      } catch (error) {
        failure = error
      }

      // Messages parsed before a limit error are still delivered, then the error.
      for (const message of batch.splice(0)) {
        this.received++
        yield message
      }

      if (failure) throw failure
    }
  }
}

export function subscribe(target: string, options: SubscribeOptions = {}): Subscription {
  return new Subscription(target, options)
}
