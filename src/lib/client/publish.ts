import type {Readable} from 'node:stream'
import {Client, FormData, request, type Dispatcher} from 'undici'
import {ClientError, describeFailure, dispatcherFor, statusError} from './http.js'
import {resolveTarget, type ClientOptions, type Target} from './target.js'

export const DEFAULT_TYPE = 'text/plain; charset=utf-8'

export interface PublishOptions extends ClientOptions {
  /** The message's media type. Default text/plain; charset=utf-8. */
  type?: string
  signal?: AbortSignal
  dispatcher?: Dispatcher
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
function published(headers: Record<string, string | string[] | undefined>, count: number): Published[] {
  const ids = headerList(headers['msgbus-id'])
  if (ids.length === 0) return Array.from({length: count}, () => ({}))
  const counts = headerList(headers['msgbus-subscribers'])
  return ids.map((id, i) => ({id, subscribers: Number(counts[i] ?? 0)}))
}

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300
}

async function post(target: Target, headers: Record<string, string>, body: Dispatcher.DispatchOptions['body'] | FormData, count: number, options: PublishOptions): Promise<Published[]> {
  if (target.channel === '') throw new ClientError(`${target.display}: name a channel to publish to`, undefined, {code: 'ERR_MSGBUS_TARGET_INVALID'})
  if (target.authorization) headers.authorization = target.authorization
  const dispatcher = options.dispatcher ?? dispatcherFor(options)
  try {
    const response = await request(target.url, {method: 'POST', headers, body, signal: options.signal, dispatcher})
    if (!isSuccess(response.statusCode)) throw await statusError(target, response.statusCode, response.body)
    await response.body.dump()
    return published(response.headers, count)
  } catch (error) {
    throw describeFailure(target, error)
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

/** Publishes several messages in one multipart/form-data request: all or none, in order. */
export async function publishAll(target: string, parts: FilePart[], options: PublishOptions = {}): Promise<Published[]> {
  const resolved = resolveTarget(target, options)
  const form = new FormData()
  parts.forEach((part, i) => form.append(`m${i}`, new Blob([part.body], {type: part.type}), part.name ?? ''))
  const results = await post(resolved, {}, form, parts.length, options)
  if (results.length !== parts.length) throw new ClientError(`${resolved.display}: ${parts.length} messages sent, ${results.length} acknowledged`, undefined, {code: 'ERR_MSGBUS_RESPONSE_INVALID'})
  return results
}

/**
 * Publishes a sequence of messages over one keep-alive connection,
 * pipelined: each is written as it comes, without waiting for the previous
 * answer, and the answers come back in order. For `send --lines`.
 */
export class PipelinedPublisher {
  private readonly client: Client
  private readonly target: Target
  private readonly path: string
  private readonly inFlight = new Set<Promise<void>>()
  /** Callers of send() waiting for room in the pipeline. */
  private readonly waiting: Array<() => void> = []
  private failure: ClientError | undefined
  sent = 0
  acknowledged = 0

  constructor(
    target: string,
    private readonly options: PublishOptions & {pipelining?: number; onPublished?: (result: Published) => void} = {},
  ) {
    this.target = resolveTarget(target, options)
    if (this.target.channel === '') throw new ClientError(`${this.target.display}: name a channel to publish to`, undefined, {code: 'ERR_MSGBUS_TARGET_INVALID'})
    this.path = this.target.url.pathname + this.target.url.search
    this.client = new Client(this.target.url.origin, {
      pipelining: options.pipelining ?? 32,
      connect: {ca: options.ca, rejectUnauthorized: !options.insecure},
    })
  }

  /** The first failure, if any: publishing stops there. */
  get error(): ClientError | undefined {
    return this.failure
  }

  /** Sends one message; resolves once there is room for another in the pipeline. */
  async send(body: Buffer | string): Promise<void> {
    if (this.failure) throw this.failure
    const headers: Record<string, string> = {'content-type': this.options.type ?? DEFAULT_TYPE}
    if (this.target.authorization) headers.authorization = this.target.authorization
    this.sent++
    // undici pipelines only requests marked idempotent and not blocking: a POST
    // is neither by default, so each would wait for the previous answer.
    const done: Promise<void> = this.client
      .request({path: this.path, method: 'POST', headers, body, signal: this.options.signal, idempotent: true, blocking: false})
      .then(async (response) => {
        if (!isSuccess(response.statusCode)) throw await statusError(this.target, response.statusCode, response.body)
        await response.body.dump()
        this.acknowledged++
        this.options.onPublished?.(published(response.headers, 1)[0])
      })
      .catch((error: unknown) => {
        if (this.failure) return
        this.failure = describeFailure(this.target, error)
        // Stop at the first failure: an idempotent request that was written
        // but not answered would otherwise be sent again on a new connection.
        this.client.destroy().catch(() => {})
      })
      .finally(() => {
        this.inFlight.delete(done)
        this.waiting.shift()?.()
      })
    this.inFlight.add(done)
    // Not Promise.race(inFlight): that leaves a reaction on every pending request per call.
    if (this.inFlight.size >= (this.options.pipelining ?? 32) * 2) await new Promise<void>((resolve) => this.waiting.push(resolve))
  }

  /** Waits for every answer and closes the connection; throws the first failure. */
  async close(): Promise<void> {
    await Promise.all(this.inFlight)
    if (!this.client.destroyed) await this.client.close()
    if (this.failure) throw this.failure
  }
}
