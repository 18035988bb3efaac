import {randomBytes} from 'node:crypto'
import {setTimeout as sleep} from 'node:timers/promises'
// Static here: this module is itself loaded by a dynamic import (open-link.ts), only for `--bus redis://`.
import {Redis, type RedisOptions} from 'ioredis'
import type {Appended, BusLink, LinkSink} from '../bus/link.js'
import {compareMessageIds, parseMessageId} from '../bus/message-id.js'
import type {MessageInput} from '../bus/message.js'
import {keptSize, type HistoryLimits} from '../history/message-log.js'
import type {Recovered, StoredMessage} from '../history/store.js'
import {LogLevel, type Logger} from '../server/ops/logger.js'
import {MsgbusError, reasonOf} from '../util/errors.js'
import {decodeEntry, entryFields, type ReadEntry} from './redis-entry.js'
import {APPEND, CHECK, STATE} from './redis-scripts.js'
import type {RedisTarget} from './redis-url.js'

/**
 * Entries the stream keeps at least, whatever `--history` says: a node that
 * lost its connection catches up from the stream, so with `--history 0`
 * (no replay for clients) the stream still holds the last thousand or so.
 */
export const STREAM_FLOOR = 1000
/** How long a publish waits for Redis (to reconnect, to take it, to give it back) before failing with ERR_MSGBUS_LINK_DOWN (a 503). */
export const LINK_TIMEOUT_MS = 5000
/** How long one XREAD waits for entries: the follow loop checks the stream's epoch at least this often. */
const BLOCK_MS = 2000
/** Entries read at once: a node catching up hands them over in batches of this many. */
const READ_COUNT = 1000

export interface RedisLinkOptions {
  logger: Logger
  /** See LINK_TIMEOUT_MS. */
  timeoutMs?: number
}

/** A publish of this node, waiting for its messages to come back through the follow loop. */
interface Pending {
  count: number
  parts: Appended[]
  /** The epoch it was appended under: lost with the stream if that one was. */
  epoch?: string
  /** Redis answered the append. */
  taken?: boolean
  resolve(appended: Appended[]): void
  reject(error: Error): void
  timer: NodeJS.Timeout
}

interface Scripted {
  msgbusAppend(...args: Array<string | Buffer | number>): Promise<string[]>
  msgbusCheck(...args: string[]): Promise<[epoch: string, last: string, deleted: string, deletedNow: string]>
}

/**
 * Nodes sharing one Redis stream (`--bus redis://`). A publish is appended
 * with XADD (a form's parts by one script, so nothing comes between them),
 * Redis gives the ids; every node, this one too, reads the stream in order
 * on a connection of its own (XREAD BLOCK from the last id it has) and
 * commits what it reads to its bus. A publish is answered once this node's
 * follow loop has handed it to this node's subscribers: entries carry who
 * appended them (node and ticket). After a lost connection the loop goes on
 * from the last id it had, so nothing the stream still holds is missed;
 * what it no longer holds (trimmed meanwhile, or a Redis that lost its data:
 * the epoch key beside the stream says which stream this is) is a gap.
 */
export class RedisLink implements BusLink {
  readonly name = 'redis'
  readonly shared = true
  private writer: (Redis & Scripted) | undefined
  private reader: (Redis & Scripted) | undefined
  private sink: LinkSink | undefined
  private readonly node = randomBytes(6).toString('hex')
  private readonly epochKey: string
  private readonly timeoutMs: number
  /** The stream this node follows (epoch key's value); appends are refused by Redis under another. */
  private epoch = ''
  /** The newest id this node has committed (or read in the window). */
  private last = '0-0'
  private maxLength = STREAM_FLOOR
  private ticket = 0
  private readonly pending = new Map<string, Pending>()
  private readonly epochWaiters = new Set<() => void>()
  private closed = false
  private following: Promise<void> | undefined
  /** When each connection went down (undefined while up), and why. */
  private readonly down = {writer: undefined as number | undefined, reader: undefined as number | undefined}
  private lastError = ''
  /** How many entries the stream had taken when it took the one at `last` (its entries-added then), once known; for telling trimmed entries (trimmedPast). */
  private ordinal: number | undefined
  /** Counts the reader's connections: a round answered across two is read again. */
  private connections = 0

  constructor(
    private readonly target: RedisTarget,
    private readonly options: RedisLinkOptions,
  ) {
    this.epochKey = `${target.stream}:epoch`
    this.timeoutMs = options.timeoutMs ?? LINK_TIMEOUT_MS
  }

  async open(limits: HistoryLimits, sink: LinkSink): Promise<Recovered> {
    const {host, port, username, password, db} = this.target
    const options: RedisOptions = {
      host,
      port,
      username,
      password,
      db,
      lazyConnect: true,
      // A command is sent only on a live connection, and never sent twice:
      // one cut in flight may have been applied, so it fails the publish
      // rather than risk a second copy.
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: null,
      retryStrategy: (times) => Math.min(100 * times, 1000),
      connectionName: `msgbus-${this.node}`,
      // RESP2: the reply shapes this link reads (XREAD's list of [stream, entries]) whatever ioredis's default.
      protocol: 2,
    }
    // Appends made in one turn of the event loop (a pipelining publisher's, many publishers') go out in one write.
    const writer = new Redis({...options, commandTimeout: this.timeoutMs, enableAutoPipelining: true}) as Redis & Scripted
    const reader = new Redis(options) as Redis & Scripted
    for (const client of [writer, reader]) {
      // Every publish waiting for Redis to come back listens for 'ready': any number of them.
      client.setMaxListeners(0)
      client.defineCommand('msgbusAppend', {numberOfKeys: 2, lua: APPEND})
      client.defineCommand('msgbusCheck', {numberOfKeys: 2, lua: CHECK})
      client.defineCommand('msgbusState', {numberOfKeys: 2, lua: STATE, readOnly: true})
    }

    this.writer = writer
    this.reader = reader
    this.watch(writer, 'writer')
    this.watch(reader, 'reader')
    const deadline = Date.now() + 2 * this.timeoutMs
    try {
      await Promise.all([this.connect(writer, deadline), this.connect(reader, deadline)])
      const [epoch, last] = await writer.msgbusCheck(this.target.stream, this.epochKey, newEpoch(), '0-0')
      this.epoch = epoch
      this.maxLength = Math.max(limits.count, STREAM_FLOOR)
      // On the reader: ioredis's auto-pipelining, on the writer, mangles call()'s arguments.
      const recovered = await this.readWindow(reader, limits, last)
      this.sink = sink
      this.following = this.follow()
      return recovered
    } catch (error) {
      writer.disconnect()
      reader.disconnect()
      throw error instanceof MsgbusError ? error : new MsgbusError('ERR_MSGBUS_LINK_DOWN', `redis ${this.target.display}: ${reasonOf(error)}`, {cause: error})
    }
  }

  /**
   * The newest entries within the limits, oldest first, and the horizon:
   * the newest id known to be gone (dropped by the limits, trimmed, or the
   * id a new stream begins after). The follow loop starts after the newest
   * entry read, so nothing appended meanwhile is missed.
   */
  private async readWindow(client: Redis, limits: HistoryLimits, last: string): Promise<Recovered> {
    const key = this.target.stream
    const raw = limits.count > 0 ? ((await client.callBuffer('XREVRANGE', key, '+', '-', 'COUNT', limits.count)) as Array<[Buffer, Buffer[]]>) : []
    const newest = raw.length > 0 ? raw[0][0].toString('latin1') : last
    this.last = newest
    const kept: StoredMessage[] = []
    let bytes = 0
    const oldestTime = limits.ageMs > 0 ? Date.now() - limits.ageMs : 0
    let horizon: string | undefined
    for (const entry of raw) {
      const {message} = decodeEntry(entry)
      bytes += keptSize(message)
      if ((limits.bytes > 0 && bytes > limits.bytes) || message.time < oldestTime) {
        horizon = message.id
        break
      }

      kept.push(message)
    }

    if (horizon === undefined) {
      if (kept.length === 0) horizon = newest
      else {
        const before = (await client.call('XREVRANGE', key, `(${kept.at(-1)!.id}`, '-', 'COUNT', 1)) as Array<[string, string[]]>
        // None before it: it is the oldest the stream holds, and trimming does not move Redis's max-deleted-entry-id, so the horizon is just before it.
        horizon = before.length > 0 ? before[0][0] : idBefore(kept.at(-1)!.id)
      }
    }

    return {messages: kept.reverse(), horizon}
  }

  /**
   * Reads the stream from the last id this node has, for as long as the
   * link is open: each round also reads the epoch and the stream's ids (in
   * the same pipeline, before the XREAD: STATE), so a stream that was lost
   * or trimmed past this node is seen before any entry after it is
   * committed.
   */
  private async follow(): Promise<void> {
    const reader = this.reader!
    const key = this.target.stream
    while (!this.closed) {
      try {
        if (reader.status !== 'ready') await this.ready(reader, Number.POSITIVE_INFINITY)
        const known = this.last
        const connection = this.connections
        // Bounded: ioredis may hold a command cut in flight unanswered.
        const pipeline = reader.pipeline() as ReturnType<Redis['pipeline']> & {msgbusState(stream: string, epochKey: string): unknown}
        pipeline.msgbusState(key, this.epochKey)
        const results = (await within(pipeline.callBuffer('XREAD', 'COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', key, known).exec(), BLOCK_MS + this.timeoutMs))!
        // Answered across a reconnection, the state and the entries might come from two servers: read again.
        if (connection !== this.connections) continue
        const [[stateError, state], [readError, read]] = results
        if (stateError) throw stateError
        if (readError) throw readError
        const [epoch, generated, first, addedText, lengthText] = state as [string, string, string, string, string]
        if (epoch !== this.epoch || compareMessageIds(generated, known) < 0) {
          this.ordinal = undefined
          await this.lost(reader, known, epoch === this.epoch ? `its last id is ${generated}` : epoch === '' ? 'its epoch key is gone' : 'its epoch key is new')
          continue
        }

        const added = Number(addedText)
        const length = Number(lengthText)
        if (this.trimmedPast(known, first, added, length)) {
          this.options.logger.warn('redis', `entries after ${known} were trimmed from ${key} before this node read them (MAXLEN: give every node the same --history); subscribers get a gap`)
          this.sink?.lost(known)
        }

        // Nothing after the last id this node has: it has every entry the stream ever took.
        if (generated === known) this.ordinal = added
        const streams = read as Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null
        if (streams) {
          for (const [, entries] of streams) {
            if (this.ordinal !== undefined) this.ordinal += entries.length
            this.commit(entries.map(decodeEntry))
          }
        }
      } catch (error) {
        if (this.closed) break
        this.lastError = reasonOf(error)
        await sleep(100)
      }
    }
  }

  /**
   * Whether entries after `known` were trimmed before this node read them.
   * Trimming takes the oldest first, so when the oldest entry held is at or
   * before `known` nothing after it is gone. Otherwise the stream holds
   * `length` entries, all after `known`, of the `added - ordinal` taken
   * since: fewer means some are gone. Unknown (no gap said) until this node
   * has once been level with the stream, when its ordinal is the count.
   */
  private trimmedPast(known: string, first: string, added: number, length: number): boolean {
    if (this.ordinal === undefined) return false
    if (length > 0 && compareMessageIds(first, known) <= 0) return false
    if (added - length <= this.ordinal) return false
    // Said once: from here on the node goes on from what the stream holds.
    this.ordinal = added - length
    return true
  }

  /** Hands entries to the bus; this node's own answer their publishers once handed. */
  private commit(entries: ReadEntry[]): void {
    if (entries.length === 0 || !this.sink) return
    const messages = entries.map((entry) => entry.message)
    this.last = messages.at(-1)!.id
    const prefix = `${this.node}:`
    const mine = entries.some((entry) => entry.origin.startsWith(prefix))
    this.sink.commit(
      messages,
      mine
        ? (handed) => {
            for (const [i, entry] of entries.entries()) {
              if (!entry.origin.startsWith(prefix)) continue
              const ticket = entry.origin.slice(prefix.length)
              const pending = this.pending.get(ticket)
              if (!pending) continue
              pending.parts.push({id: entry.message.id, time: entry.message.time, subscribers: handed[i]})
              if (pending.parts.length === pending.count) this.settle(ticket, pending)
            }
          }
        : undefined,
    )
  }

  /**
   * The stream is not the one this node followed: Redis lost it (restarted
   * without persistence, a failover to a replica that lacked entries). The
   * check sets a new epoch if none is there and makes the stream's ids go
   * on after this node's; subscribers hear of the hole; publishes appended
   * to the lost stream and not yet read back fail.
   */
  private async lost(client: Redis & Scripted, after: string, why: string): Promise<void> {
    const [epoch, , , deletedNow] = await within(client.msgbusCheck(this.target.stream, this.epochKey, newEpoch(), after), this.timeoutMs)
    const old = this.epoch
    this.epoch = epoch
    // What the stream marks as gone is in this hole (a node that had more set the mark at its last id): not a second one.
    if (compareMessageIds(deletedNow, this.last) > 0) this.last = deletedNow
    this.options.logger.warn('redis', `the stream ${this.target.stream} lost entries (${why}): messages after ${after} may be gone; subscribers get a gap`)
    this.sink?.lost(after)
    for (const [ticket, pending] of this.pending) {
      if (pending.epoch === old && pending.epoch !== undefined) {
        this.settle(ticket, pending, new MsgbusError('ERR_MSGBUS_LINK_DOWN', `redis lost the stream ${this.target.stream} before this publish reached subscribers`))
      }
    }

    for (const wake of this.epochWaiters) wake()
  }

  /**
   * Appends the messages (one script: nothing between them) and resolves
   * once this node's follow loop has handed them to its subscribers.
   * Waits for Redis at most the link's timeout in all: while it cannot be
   * reached the publish fails with ERR_MSGBUS_LINK_DOWN and was not
   * published; one whose connection broke while Redis had it may have been.
   */
  append(inputs: MessageInput[]): Promise<Appended[]> {
    if (!this.sink || this.closed) return Promise.reject(new MsgbusError('ERR_MSGBUS_SERVER_STATE', 'the bus is not open'))
    const ticket = String(++this.ticket)
    const origin = `${this.node}:${ticket}`
    const args: Array<string | Buffer | number> = [this.maxLength, inputs.length]
    for (const input of inputs) {
      const fields = entryFields(input, origin)
      args.push(fields.length, ...fields)
    }

    const deadline = Date.now() + this.timeoutMs
    return new Promise<Appended[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        const taken = pending.taken ? 'redis took it, but this node has not read it back' : pending.epoch === undefined ? 'it was not published' : 'it may have been published'
        this.settle(ticket, pending, new MsgbusError('ERR_MSGBUS_LINK_DOWN', `redis ${this.target.display} did not answer within ${this.timeoutMs / 1000}s: ${taken}${this.reason()}`))
      }, this.timeoutMs)
      const pending: Pending = {count: inputs.length, parts: [], resolve, reject, timer}
      this.pending.set(ticket, pending)
      this.send(args, pending, deadline).catch((error: Error) => this.settle(ticket, pending, error))
    })
  }

  private async send(args: Array<string | Buffer | number>, pending: Pending, deadline: number): Promise<void> {
    const writer = this.writer!
    for (;;) {
      if (writer.status !== 'ready') await this.ready(writer, deadline)
      const epoch = this.epoch
      try {
        pending.epoch = epoch
        await writer.msgbusAppend(this.target.stream, this.epochKey, epoch, ...args)
        pending.taken = true
        return
      } catch (error) {
        pending.epoch = undefined
        const message = reasonOf(error)
        // The stream was lost and this node has not seen it yet: its follow loop will within a round.
        if (message.startsWith('MSGBUSEPOCH')) await this.epochAfter(epoch, deadline)
        // Not sent: the connection went down just before.
        else if (!/writeable/.test(message)) {
          throw new MsgbusError('ERR_MSGBUS_LINK_DOWN', `redis ${this.target.display}: ${message} (the message may have been published)`, {cause: error})
        }
      }
    }
  }

  private settle(ticket: string, pending: Pending, error?: Error): void {
    if (this.pending.get(ticket) !== pending) return
    this.pending.delete(ticket)
    clearTimeout(pending.timer)
    if (error) pending.reject(error)
    else pending.resolve(pending.parts)
  }

  /** Waits until the follow loop has moved on from `epoch`, or the deadline. */
  private epochAfter(epoch: string, deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.epoch !== epoch) return resolve()
      const done = (error?: Error) => {
        clearTimeout(timer)
        this.epochWaiters.delete(wake)
        if (error) reject(error)
        else resolve()
      }

      const wake = () => done()
      const timer = setTimeout(() => done(new MsgbusError('ERR_MSGBUS_LINK_DOWN', `the stream ${this.target.stream} was reset and this node has not caught up yet`)), Math.max(0, deadline - Date.now()))
      this.epochWaiters.add(wake)
    })
  }

  /** First connection: failures before the deadline are retried, then it fails saying why. */
  private async connect(client: Redis, deadline: number): Promise<void> {
    client.connect().catch(() => {})
    await this.ready(client, deadline)
  }

  /** Resolves once the client is connected (and past ioredis's ready check); rejects at the deadline or when it closes for good. */
  private ready(client: Redis, deadline: number): Promise<void> {
    if (client.status === 'ready') return Promise.resolve()
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer)
        client.off('ready', onReady)
        client.off('end', onEnd)
      }

      const onReady = () => {
        cleanup()
        resolve()
      }

      const onEnd = () => {
        cleanup()
        reject(new MsgbusError('ERR_MSGBUS_LINK_DOWN', `the connection to redis ${this.target.display} is closed`))
      }

      const timer = Number.isFinite(deadline)
        ? setTimeout(
            () => {
              cleanup()
              reject(new MsgbusError('ERR_MSGBUS_LINK_DOWN', `cannot reach redis ${this.target.display}${this.reason()}`))
            },
            Math.max(0, deadline - Date.now()),
          )
        : undefined
      client.on('ready', onReady)
      client.on('end', onEnd)
    })
  }

  /** Keeps each connection's state for readiness, and logs an outage once at each end. */
  private watch(client: Redis, which: 'writer' | 'reader'): void {
    let wasReady = false
    client.on('error', (error: Error) => {
      this.lastError = reasonOf(error)
    })
    client.on('close', () => {
      if (this.closed) return
      this.down[which] ??= Date.now()
      if (wasReady) this.options.logger.warn('redis', `${which} connection to ${this.target.display} lost${this.reason()}; reconnecting`)
      wasReady = false
    })
    client.on('ready', () => {
      if (which === 'reader') this.connections++
      const since = this.down[which]
      this.down[which] = undefined
      if (since !== undefined && wasReady === false && this.epoch !== '') {
        this.options.logger.log(LogLevel.Always, 'redis', `${which} connection to ${this.target.display} back after ${((Date.now() - since) / 1000).toFixed(1)}s`)
      }

      wasReady = true
    })
  }

  private reason(): string {
    return this.lastError ? ` (${this.lastError})` : ''
  }

  get failure(): string | undefined {
    if (this.closed) return undefined
    const since = Math.min(this.down.writer ?? Number.POSITIVE_INFINITY, this.down.reader ?? Number.POSITIVE_INFINITY)
    if (!Number.isFinite(since)) return undefined
    return `redis ${this.target.display} unreachable since ${new Date(since).toISOString()}${this.reason()}`
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const [ticket, pending] of this.pending) this.settle(ticket, pending, new MsgbusError('ERR_MSGBUS_SERVER_STATE', 'the server is stopping'))
    const writer = this.writer
    const reader = this.reader
    // The reader is blocked in XREAD: QUIT would wait for it.
    reader?.disconnect()
    if (writer?.status === 'ready') await writer.quit().catch(() => writer.disconnect())
    else writer?.disconnect()
    await this.following
    this.sink = undefined
  }
}

/** The greatest id below `id`: a horizon that claims nothing before it. */
function idBefore(id: string): string {
  const [ms, seq] = parseMessageId(id)
  return seq > 0 ? `${ms}-${seq - 1}` : `${ms - 1}-${Number.MAX_SAFE_INTEGER}`
}

/** A new stream's epoch: random, so that a stream made again (after a loss) never has the one a node remembers. */
function newEpoch(): string {
  return `${Date.now()}-${randomBytes(6).toString('hex')}`
}

/** The promise's value, or a rejection once `ms` have passed without one. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000}s`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}
