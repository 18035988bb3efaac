/**
 * `--bus nats://`: nodes share one NATS JetStream stream (link.ts is the
 * contract). This module, and the @nats-io packages with it, is loaded only
 * by open-link.ts's dynamic import, when `--bus` names NATS: the CLI's
 * start-up never pays for them (scripts/build.ts leaves them out of the
 * bundle).
 *
 * Ids. A stream message has a sequence and a server timestamp, but
 * `<server-ms>-<sequence>` goes down when the server's clock steps back, and
 * no rule over the timestamps alone can both follow the clock and never go
 * down when a node that started later sees fewer of them. So the publishing
 * node gives the ids, as the embedded link does (its clock, never below the
 * newest id it knows), and they travel in the stream message; JetStream's
 * expected-last-sequence makes that correct: a node publishes "after
 * sequence S" only, so the newest id it knew is the newest in the stream,
 * and a node that was behind is refused ("wrong last sequence"), catches up
 * and tries again with new ids. Ids are the same on every node (read, not
 * worked out) and increase in stream order whatever the clocks do.
 *
 * Forms. A node publishes everything it has waiting (forms and single
 * messages) as one stream message (nats-batch.ts): a form is contiguous
 * with no atomic batch (not in nats-server 2.9), and a busy node publishes
 * once per round trip, not once per message.
 *
 * Loss. Each stream message names the id it follows (`Msgbus-After`, `0-0`
 * for a stream's first); a node that sees one that does not follow the last
 * it had (trimmed before it read them, a stream lost and made anew) tells
 * its bus (`sink.lost`). A stream whose creation time changed (nats-server
 * restarted with memory storage or a wiped store, the stream deleted) is
 * seen at reconnection, or when its consumer goes, and told at once.
 */
import {randomBytes} from 'node:crypto'
import {setTimeout as sleep} from 'node:timers/promises'
import {connect, headers, type NatsConnection} from '@nats-io/transport-node'
import {jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg, type StreamConfig, type StreamInfo} from '@nats-io/jetstream'
import {MsgbusError, reasonOf} from '../util/errors.js'
import {LogLevel, silentLogger, type Logger} from '../server/ops/log.js'
import type {HistoryLimits} from '../history/message-log.js'
import type {Recovered, StoredMessage} from '../history/store.js'
import type {MessageInput} from '../bus/message.js'
import {compareMessageIds, MessageIdGenerator} from '../bus/message-id.js'
import {startHorizon} from '../bus/embedded-link.js'
import type {Appended, BusLink, LinkSink} from '../bus/link.js'
import {batchSize, decodeBatch, encodeBatch} from './nats-batch.js'
import {parseNatsUrl, type NatsTarget} from './nats-url.js'

/** How long an append may wait for the stream (a server restarting, a lost connection) before it fails with ERR_MSGBUS_LINK_DOWN (a 503). */
export const NATS_APPEND_WAIT_MS = 5_000
/** How long open() may take to read the kept window. */
const OPEN_WAIT_MS = 30_000
/** The header naming the id a stream message follows; a stream's first follows FIRST. */
const AFTER = 'Msgbus-After'
const FIRST = '0-0'
/** Messages the stream keeps at the least, whatever --history says: room for nodes that lag to catch up. */
const MIN_STREAM_MESSAGES = 1_000
const MiB = 1024 * 1024
/** JetStream's error code for a publish whose expected last sequence is not the stream's. */
const WRONG_LAST_SEQUENCE = 10071

export interface NatsLinkOptions {
  logger?: Logger
  /** See NATS_APPEND_WAIT_MS. */
  appendWaitMs?: number
}

/** An append waiting to be published, and what it is told. */
interface Waiting {
  inputs: MessageInput[]
  deadline: number
  resolve(appended: Appended[]): void
  reject(error: Error): void
}

/** A batch this node published, until its follower gets it back. */
interface Mine {
  members: Waiting[]
  timer?: NodeJS.Timeout
}

export class NatsLink implements BusLink {
  readonly name = 'nats'
  readonly shared = true
  private readonly target: NatsTarget
  private readonly logger: Logger
  private readonly appendWaitMs: number
  private readonly subject: string
  /** Names this node's batches (Nats-Msg-Id: also JetStream's dedupe key, so a publish retried after a lost ack is stored once). */
  private readonly node = randomBytes(6).toString('hex')
  private batches = 0
  private nc: NatsConnection | undefined
  private js: JetStreamClient | undefined
  private jsm: JetStreamManager | undefined
  private sink: LinkSink | undefined
  private limits: HistoryLimits = {count: 0, bytes: 0, ageMs: 0}
  private maxPayload = MiB
  /** The stream followed, by its creation time: another one is a stream lost and made anew. */
  private created = ''
  /** Bumped whenever the follower is replaced: what an old consumer still delivers is ignored. */
  private generation = 0
  private consumer: ConsumerMessages | undefined
  /** The id the next stream message should follow; undefined takes any (a stream whose every message had gone when this node opened). */
  private lastId: string | undefined
  /** The newest id the bus was given (what a hole comes after). */
  private lastHad = FIRST
  private committedSeq = 0
  /** The stream's tail as this node's own last publish left it, when ahead of what the follower had. */
  private acked = {seq: 0, id: FIRST}
  /** The newest id this node knows of, in any stream: new ids go above it, even in a stream made anew. */
  private floorId = FIRST
  /** While open() reads the kept window. */
  private window: {target: number; messages: StoredMessage[]; horizon: string; resolve(recovered: Recovered): void} | undefined
  /** Messages that came after the window, before the bus took it. */
  private held: Array<[generation: number, message: JsMsg]> | undefined
  private readonly mine = new Map<string, Mine>()
  private readonly queue: Waiting[] = []
  private pumping = false
  private readonly progress = new Set<() => void>()
  private resyncing: Promise<void> | undefined
  private disconnected: string | undefined
  private trouble: string | undefined
  private closing = false
  /** Publishes refused because another node's came first (each tried again): how often the nodes raced for the tail. */
  conflicts = 0

  constructor(url: string, options: NatsLinkOptions = {}) {
    this.target = parseNatsUrl(url)
    this.logger = options.logger ?? silentLogger
    this.appendWaitMs = options.appendWaitMs ?? NATS_APPEND_WAIT_MS
    this.subject = `msgbus.${this.target.stream}`
  }

  get failure(): string | undefined {
    return this.disconnected ?? this.trouble
  }

  async open(limits: HistoryLimits, sink: LinkSink): Promise<Recovered> {
    this.limits = limits
    const {server, user, pass, shown} = this.target
    try {
      // noAsyncTraces: otherwise every request (each publish) makes two Errors up front for their stacks, ~60 µs of a publish's CPU.
      this.nc = await connect({servers: server, user, pass, name: 'msgbus', maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 5_000, pingInterval: 5_000, maxPingOut: 2, noAsyncTraces: true})
    } catch (error) {
      throw new MsgbusError('ERR_MSGBUS_LINK_DOWN', `cannot connect to ${shown}: ${reasonOf(error)}`, {cause: error})
    }

    try {
      this.jsm = await jetstreamManager(this.nc)
    } catch (error) {
      await this.nc.close()
      throw new MsgbusError('ERR_MSGBUS_LINK_DOWN', `${shown} has no JetStream (nats-server -js): ${reasonOf(error)}`, {cause: error})
    }

    this.js = jetstream(this.nc)
    this.maxPayload = this.nc.info?.max_payload ?? MiB
    this.watchConnection(this.nc)
    let info: StreamInfo
    try {
      info = await this.ensureStream()
    } catch (error) {
      await this.nc.close()
      throw error instanceof MsgbusError ? error : new MsgbusError('ERR_MSGBUS_LINK_DOWN', `stream ${this.target.stream} on ${shown}: ${reasonOf(error)}`, {cause: error})
    }

    this.created = info.created
    this.sink = sink
    this.logger.log(LogLevel.Always, 'nats', `stream ${info.config.name} on ${shown}: ${info.state.messages} messages (sequences ${info.state.first_seq}-${info.state.last_seq}), max payload ${this.maxPayload} bytes`)
    const {first_seq: first, last_seq: last, messages} = info.state
    if (messages === 0) {
      // A stream with no message: new (its first will follow FIRST), or one whose last message went (the next may follow any id).
      this.lastId = last === 0 ? FIRST : undefined
      this.committedSeq = last
      const horizon = last === 0 ? this.creationHorizon() : startHorizon()
      this.lastHad = horizon
      this.floorId = horizon
      this.held = []
      try {
        await this.follow(last + 1)
      } catch (error) {
        await this.close()
        throw new MsgbusError('ERR_MSGBUS_LINK_DOWN', `stream ${this.target.stream} on ${shown}: ${reasonOf(error)}`, {cause: error})
      }

      setImmediate(() => this.goLive())
      return {messages: [], horizon}
    }

    let timer: NodeJS.Timeout | undefined
    const recovered = new Promise<Recovered>((resolve, reject) => {
      this.window = {target: last, messages: [], horizon: '', resolve}
      timer = setTimeout(() => reject(new MsgbusError('ERR_MSGBUS_LINK_DOWN', `stream ${this.target.stream} on ${shown}: its messages up to sequence ${last} did not come within ${OPEN_WAIT_MS / 1000} s`)), OPEN_WAIT_MS)
    })
    try {
      await this.follow(first)
      return await recovered
    } catch (error) {
      await this.close()
      throw error
    } finally {
      clearTimeout(timer)
    }
  }

  /** An id before any a stream made at its creation time holds (ids given before it belong to another stream: a resume from one hears it is gone). */
  private creationHorizon(): string {
    const ms = Date.parse(this.created)
    return Number.isFinite(ms) ? `${ms}-0` : FIRST
  }

  private streamConfig(): Partial<StreamConfig> & {name: string} {
    const {count, bytes} = this.limits
    return {
      name: this.target.stream,
      subjects: [this.subject],
      storage: this.target.storage as StreamConfig['storage'],
      retention: 'limits' as StreamConfig['retention'],
      discard: 'old' as StreamConfig['discard'],
      // Batches, so at least --history messages. No max_age: the stream keeps its newest message, whose id the next one follows; each node's log drops by age.
      max_msgs: Math.max(count, MIN_STREAM_MESSAGES),
      max_bytes: bytes > 0 ? Math.max(2 * bytes, 64 * MiB) : -1,
      num_replicas: 1,
    }
  }

  /** The stream's info, after making it if it is missing (the first node, or a server that lost it). */
  private async ensureStream(): Promise<StreamInfo> {
    const jsm = this.jsm
    if (!jsm) throw new Error('not connected')
    let info: StreamInfo
    try {
      info = await jsm.streams.info(this.target.stream)
    } catch (error) {
      if (!/stream not found/i.test(reasonOf(error)) && !/stream not found/i.test((error as Error).message)) throw error
      try {
        info = await jsm.streams.add(this.streamConfig())
        this.logger.log(LogLevel.Always, 'nats', `made stream ${this.target.stream} (${this.target.storage} storage, subject ${this.subject})`)
      } catch (made) {
        // Another node made it first.
        info = await jsm.streams.info(this.target.stream)
        if (!info) throw made
      }
    }

    if (!info.config.subjects?.includes(this.subject)) {
      throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `stream ${this.target.stream} exists, for subjects ${info.config.subjects?.join(', ')}, not ${this.subject}`)
    }

    return info
  }

  /** Follows the stream from `seq` with an ordered consumer; one that ends (its stream or consumer gone) is replaced by resync(). */
  private async follow(seq: number): Promise<void> {
    const js = this.js
    if (!js) throw new Error('not connected')
    const generation = ++this.generation
    this.consumer?.stop()
    this.consumer = undefined
    const consumer = await js.consumers.get(this.target.stream, {deliver_policy: 'by_start_sequence' as never, opt_start_seq: Math.max(1, seq)})
    const messages = await consumer.consume({
      callback: (message: JsMsg) => this.receive(generation, message),
      // A consumer or stream that went is ended here, and resync() sees whether the stream is another one.
      abort_on_missing_resource: true,
      max_messages: 256,
      expires: 5_000,
    } as never)
    if (generation !== this.generation || this.closing) {
      messages.stop()
      return
    }

    this.consumer = messages
    void messages.closed().then((error) => {
      if (generation !== this.generation || this.closing) return
      this.consumer = undefined
      this.logger.log(LogLevel.Always, 'nats', `stream ${this.target.stream}: consumer ended${error ? ` (${reasonOf(error)})` : ''}; following it again`)
      void this.resync()
    })
  }

  /**
   * After a reconnection or a consumer that ended: the stream is looked up
   * (made if missing); one with another creation time is a new stream, so
   * whatever the old one held after this node's newest is lost: told at
   * once. Then the stream is followed again (from the start of a new one).
   * Tried again every second until it works or the link closes.
   */
  private resync(): Promise<void> {
    this.resyncing ??= (async () => {
      while (!this.closing) {
        try {
          const info = await this.ensureStream()
          if (info.created !== this.created) {
            this.created = info.created
            this.renewed()
            await this.follow(1)
          } else if (!this.consumer) {
            await this.follow(this.committedSeq + 1)
          }

          this.trouble = undefined
          return
        } catch (error) {
          this.trouble = `stream ${this.target.stream} on ${this.target.shown}: ${reasonOf(error)}`
          await new Promise((resolve) => setTimeout(resolve, 1_000))
        }
      }
    })().finally(() => {
      this.resyncing = undefined
    })
    return this.resyncing
  }

  /** The stream is another one: what the old one held past this node's newest is gone. */
  private renewed(): void {
    this.logger.warn('nats', `stream ${this.target.stream} on ${this.target.shown} was made anew (server restarted without its store, or deleted): messages after ${this.lastHad} may be lost`)
    this.generation++
    this.consumer?.stop()
    this.consumer = undefined
    if (this.sink && !this.window && !this.held) this.sink.lost(this.lastHad)
    this.lastId = FIRST
    this.committedSeq = 0
    this.acked = {seq: 0, id: FIRST}
    this.wake()
  }

  private watchConnection(nc: NatsConnection): void {
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') {
          this.disconnected = `disconnected from ${this.target.shown}, reconnecting`
          this.logger.warn('nats', this.disconnected)
        } else if (status.type === 'reconnect') {
          this.disconnected = undefined
          this.logger.log(LogLevel.Always, 'nats', `reconnected to ${this.target.shown}`)
          void this.resync()
        }
      }
    })()
  }

  private receive(generation: number, message: JsMsg): void {
    if (generation !== this.generation) return
    if (this.held && !this.window) {
      this.held.push([generation, message])
      return
    }

    this.take(message)
  }

  /** What the window's readers wait for: the bus restores the window in the turn open() resolves, and only then takes more. */
  private goLive(): void {
    const held = this.held ?? []
    this.held = undefined
    for (const [generation, message] of held) if (generation === this.generation) this.take(message)
  }

  private take(message: JsMsg): void {
    const after = message.headers?.get(AFTER) ?? ''
    const messages = decodeBatch(message.data)
    const newest = messages.at(-1)?.id ?? after
    const follows = this.lastId === undefined || after === this.lastId
    this.lastId = newest
    this.committedSeq = message.seq
    if (compareMessageIds(newest, this.floorId) > 0) this.floorId = newest
    const window = this.window
    if (window) {
      // The window begins at its first message, or again after a hole in it (trimmed while it was read).
      if (window.horizon === '' || !follows) {
        window.messages = []
        window.horizon = after === FIRST ? this.creationHorizonBelow(messages[0].id) : after
      }

      window.messages.push(...messages)
      if (message.seq >= window.target) {
        this.window = undefined
        this.held = []
        this.lastHad = newest
        window.resolve({messages: window.messages, horizon: window.horizon})
        setImmediate(() => this.goLive())
      }

      return
    }

    const sink = this.sink
    if (!sink) return
    if (!follows) sink.lost(this.lastHad)
    this.lastHad = newest
    const key = message.headers?.get('Nats-Msg-Id') ?? ''
    const mine = this.mine.get(key)
    if (mine) {
      this.mine.delete(key)
      clearTimeout(mine.timer)
    }

    sink.commit(messages, mine && ((handed) => settle(mine.members, messages, handed)))
    this.wake()
  }

  private creationHorizonBelow(firstId: string): string {
    const horizon = this.creationHorizon()
    return compareMessageIds(horizon, firstId) < 0 ? horizon : FIRST
  }

  append(inputs: MessageInput[]): Promise<Appended[]> {
    if (!this.sink || this.closing) return Promise.reject(new MsgbusError('ERR_MSGBUS_SERVER_STATE', 'the bus is not open'))
    return new Promise((resolve, reject) => {
      this.queue.push({inputs, deadline: Date.now() + this.appendWaitMs, resolve, reject})
      void this.pump()
    })
  }

  /** Publishes what waits, one batch at a time: what comes while one is on its way goes in the next. */
  private async pump(): Promise<void> {
    if (this.pumping) return
    this.pumping = true
    try {
      while (this.queue.length > 0 && !this.closing) await this.publish(this.nextBatch())
    } finally {
      this.pumping = false
    }
  }

  /** The waiting appends, oldest first, that fit in one stream message under the server's max_payload (at least one). */
  private nextBatch(): Waiting[] {
    const room = this.maxPayload - 1024
    const batch: Waiting[] = []
    let size = 0
    while (this.queue.length > 0) {
      const next = this.queue[0]
      const more = batchSize(next.inputs)
      if (batch.length > 0 && size + more > room) break
      batch.push(next)
      size += more
      this.queue.shift()
    }

    if (size > room) {
      const [only] = batch
      only.reject(new MsgbusError('ERR_MSGBUS_LINK_DOWN', `${size} bytes do not fit in one NATS message: max_payload of ${this.target.shown} is ${this.maxPayload} (raise it to --max-request-size)`))
      return []
    }

    return batch
  }

  /** The stream's tail as this node knows it: the sequence a publish expects, and the id its messages follow. */
  private tail(): {seq: number; id: string} {
    if (this.acked.seq > this.committedSeq) return this.acked
    return {seq: this.committedSeq, id: this.committedSeq === 0 ? FIRST : (this.lastId ?? this.lastHad)}
  }

  private async publish(batch: Waiting[]): Promise<void> {
    if (batch.length === 0) return
    const js = this.js
    if (!js) return fail(batch, new MsgbusError('ERR_MSGBUS_SERVER_STATE', 'the bus is not open'))
    const key = `${this.node}.${++this.batches}`
    const inputs = batch.flatMap((waiting) => waiting.inputs)
    const deadline = Math.min(...batch.map((waiting) => waiting.deadline))
    const mine: Mine = {members: batch}
    this.mine.set(key, mine)
    for (;;) {
      const wait = deadline - Date.now()
      if (wait <= 0 || this.closing) return this.unpublished(key, `no answer from ${this.target.shown} within ${this.appendWaitMs / 1000} s`)
      const tail = this.tail()
      const ids = new MessageIdGenerator(Date.now, tail.id === FIRST ? this.floorId : maxId(tail.id, this.floorId))
      const given = inputs.map(() => ids.next())
      const h = headers()
      h.set(AFTER, tail.seq === 0 ? FIRST : tail.id)
      try {
        const ack = await js.publish(this.subject, encodeBatch(given, inputs), {msgID: key, expect: {lastSequence: tail.seq}, headers: h, timeout: wait})
        if (!ack.duplicate && ack.seq > this.committedSeq && ack.seq > this.acked.seq) this.acked = {seq: ack.seq, id: given.at(-1) ?? tail.id}
        const newest = given.at(-1)
        if (newest && compareMessageIds(newest, this.floorId) > 0) this.floorId = newest
        // Settled when the follower has it back; if it never does in time, the publisher hears so.
        if (this.mine.has(key)) {
          mine.timer = setTimeout(() => {
            if (this.mine.delete(key)) fail(batch, new MsgbusError('ERR_MSGBUS_LINK_DOWN', `published (stream sequence ${ack.seq}) but not received back from ${this.target.shown} within ${this.appendWaitMs / 1000} s`))
          }, Math.max(deadline - Date.now(), 0) + this.appendWaitMs)
        }

        return
      } catch (error) {
        const wrong = wrongLastSequence(error)
        if (wrong !== undefined) {
          this.conflicts++
          // Another node published first: catch up to it, then try again with ids after its.
          if (wrong < this.tail().seq) await this.resync()
          else await this.until(() => this.committedSeq >= wrong || this.acked.seq >= wrong, deadline)
          continue
        }

        if (/no responders|stream not found/i.test(reasonOf(error)) || /no responders|stream not found/i.test((error as Error).message ?? '')) {
          await Promise.race([this.resync(), sleep(Math.max(0, deadline - Date.now()))])
          continue
        }

        return this.unpublished(key, `${this.target.shown}: ${(error as Error).message || reasonOf(error)}`)
      }
    }
  }

  private unpublished(key: string, why: string): void {
    const mine = this.mine.get(key)
    if (!mine) return
    this.mine.delete(key)
    fail(mine.members, new MsgbusError('ERR_MSGBUS_LINK_DOWN', `not published: ${why}`))
  }

  /** Resolves once `ready()` holds (checked whenever the follower moves) or the deadline passes. */
  private until(ready: () => boolean, deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (ready() || Date.now() >= deadline || this.closing) {
          this.progress.delete(check)
          clearTimeout(timer)
          resolve()
        }
      }

      const timer = setTimeout(check, Math.max(0, deadline - Date.now()))
      this.progress.add(check)
      check()
    })
  }

  private wake(): void {
    for (const check of [...this.progress]) check()
  }

  async close(): Promise<void> {
    this.closing = true
    this.generation++
    this.consumer?.stop()
    this.consumer = undefined
    this.wake()
    const gone = new MsgbusError('ERR_MSGBUS_LINK_DOWN', 'not published: the server is stopping')
    fail(this.queue.splice(0), gone)
    for (const [key, mine] of this.mine) {
      clearTimeout(mine.timer)
      this.mine.delete(key)
      fail(mine.members, gone)
    }

    this.sink = undefined
    await this.nc?.close().catch(() => {})
  }
}

/** Each append of a batch hears of its own messages: ids, time, and the subscribers of this node each was handed to. */
function settle(members: Waiting[], messages: StoredMessage[], handed: number[]): void {
  let offset = 0
  for (const member of members) {
    const count = member.inputs.length
    member.resolve(messages.slice(offset, offset + count).map((message, i) => ({id: message.id, time: message.time, subscribers: handed[offset + i]})))
    offset += count
  }
}

function fail(members: Waiting[], error: Error): void {
  for (const member of members) member.reject(error)
}

function maxId(a: string, b: string): string {
  return compareMessageIds(a, b) >= 0 ? a : b
}

/** The stream's last sequence from a "wrong last sequence: N" refusal, else undefined. */
function wrongLastSequence(error: unknown): number | undefined {
  const code = (error as {code?: unknown}).code
  const message = (error as Error).message ?? ''
  const found = /wrong last sequence: (\d+)/.exec(message)
  if (code !== WRONG_LAST_SEQUENCE && !found) return undefined
  return found ? Number(found[1]) : 0
}
