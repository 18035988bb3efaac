import {LatencyHistogram} from './latency.js'
import {nowMicros} from './marker.js'
import type {MessageSink} from './stream-reader.js'
import {isMessageId, parseMessageId} from '../bus/message-id.js'

/** Counters over a window (an interval, or the whole run). */
export class Window {
  received = 0
  bytes = 0
  lost = 0
  duplicates = 0
  outOfOrder = 0
  reconnects = 0
  /** Messages a resumed connection got that were sent before it asked to resume: what the replay brought back. */
  recovered = 0
  /** Gap events: messages the server said a connection will not get. */
  gaps = 0
  /** When (nowMicros) the first and the last message of the window arrived, 0 before one: the publishing window, without idle time. */
  firstMicros = 0
  lastMicros = 0
  readonly latency = new LatencyHistogram()

  add(other: Window): void {
    this.received += other.received
    this.bytes += other.bytes
    this.lost += other.lost
    this.duplicates += other.duplicates
    this.outOfOrder += other.outOfOrder
    this.reconnects += other.reconnects
    this.recovered += other.recovered
    this.gaps += other.gaps
    if (other.firstMicros > 0 && (this.firstMicros === 0 || other.firstMicros < this.firstMicros)) this.firstMicros = other.firstMicros
    if (other.lastMicros > this.lastMicros) this.lastMicros = other.lastMicros
    this.latency.add(other.latency)
  }
}

/** Per publisher: the last sequence number seen, and the ones skipped (lost, unless they come late). */
interface Sequence {
  last: number
  missing: Set<number>
}

/** When (nowMicros) the socket read being handled arrived; 0 until a message in it asks. */
let readAt = 0

/**
 * A socket read begins. Reads are handled one at a time, and the messages
 * of one arrived together: the first to be counted reads the clock for all
 * (a clock read costs more than the rest of a message's tally).
 */
export function newRead(): void {
  readAt = 0
}

/** Missing sequence numbers remembered per publisher, to tell late from duplicate; older gaps just stay lost. */
const MAX_MISSING = 10_000

/**
 * One subscription's messages, counted into the pool's current window: each
 * one received, its latency from its marker, and per publisher the gaps,
 * repeats and steps back in the sequence numbers. Kept across reconnects, so
 * what a dropped connection missed counts as lost unless the resume (after
 * the last id it holds) brings it back.
 */
export class SubscriptionTally implements MessageSink {
  private readonly sequences = new Map<number, Sequence>()
  // Nearly every message comes from the publisher of the one before (one per test-pub connection): no map lookup for it.
  private lastPublisher = -1
  private lastSequence: Sequence | undefined
  // The last message id as its two numbers, not a string: no allocation per message.
  private lastMs = -1
  private lastSeq = 0
  /** When (nowMicros) this connection last asked to resume; messages sent before it came by the replay. */
  private resumedAt = 0
  /** When (nowMicros) the message being counted arrived. */
  private receivedAt = 0

  constructor(private readonly counters: {readonly window: Window}) {}

  /** The id of the last message received, where a reconnect resumes; undefined before one (or from a server without ids). */
  get lastId(): string | undefined {
    return this.lastMs < 0 ? undefined : `${this.lastMs}-${this.lastSeq}`
  }

  /** Where the stream began (Msgbus-Replay-From): the resume point until a message comes, so a drop before the first loses nothing. */
  startsAfter(id: string): void {
    if (this.lastMs >= 0 || !isMessageId(id)) return
    const [ms, seq] = parseMessageId(id)
    this.id(ms, seq)
  }

  /** The connection asks to resume now. */
  resumed(atMicros: number): void {
    this.resumedAt = atMicros
  }

  id(ms: number, seq: number): void {
    this.lastMs = ms
    this.lastSeq = seq
  }

  gap(): void {
    this.counters.window.gaps++
  }

  received(bodyBytes: number): void {
    const window = this.counters.window
    const now = readAt || (readAt = nowMicros())
    this.receivedAt = now
    window.received++
    window.bytes += bodyBytes
    if (window.firstMicros === 0) window.firstMicros = now
    window.lastMicros = now
  }

  marker(publisher: number, seq: number, sentMicros: number): void {
    const window = this.counters.window
    window.latency.record(this.receivedAt - sentMicros)
    if (sentMicros < this.resumedAt) window.recovered++
    let sequence = this.lastSequence
    if (publisher !== this.lastPublisher || !sequence) {
      sequence = this.sequences.get(publisher)
      this.lastPublisher = publisher
      if (!sequence) {
        this.lastSequence = {last: seq, missing: new Set()}
        this.sequences.set(publisher, this.lastSequence)
        return
      }

      this.lastSequence = sequence
    }

    if (seq === sequence.last + 1) {
      sequence.last = seq
    } else if (seq > sequence.last) {
      for (let next = sequence.last + 1; next < seq && sequence.missing.size < MAX_MISSING; next++) sequence.missing.add(next)
      window.lost += seq - sequence.last - 1
      sequence.last = seq
    } else if (sequence.missing.delete(seq)) {
      window.outOfOrder++
      window.lost--
    } else {
      window.duplicates++
    }
  }
}
