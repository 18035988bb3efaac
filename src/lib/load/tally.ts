import {LatencyHistogram} from './latency.js'
import {nowMicros} from './marker.js'
import type {MessageSink} from './stream-reader.js'

/** Counters over a window (an interval, or the whole run). */
export class Window {
  received = 0
  bytes = 0
  lost = 0
  duplicates = 0
  outOfOrder = 0
  reconnects = 0
  readonly latency = new LatencyHistogram()

  add(other: Window): void {
    this.received += other.received
    this.bytes += other.bytes
    this.lost += other.lost
    this.duplicates += other.duplicates
    this.outOfOrder += other.outOfOrder
    this.reconnects += other.reconnects
    this.latency.add(other.latency)
  }
}

/** Per publisher: the last sequence number seen, and the ones skipped (lost, unless they come late). */
interface Sequence {
  last: number
  missing: Set<number>
}

/** Missing sequence numbers remembered per publisher, to tell late from duplicate; older gaps just stay lost. */
const MAX_MISSING = 10_000

/**
 * One subscription's messages, counted into the pool's current window: each
 * one received, its latency from its marker, and per publisher the gaps,
 * repeats and steps back in the sequence numbers. Kept across reconnects, so
 * what a dropped connection missed counts as lost.
 */
export class SubscriptionTally implements MessageSink {
  private readonly sequences = new Map<number, Sequence>()
  // Nearly every message comes from the publisher of the one before (one per test-pub connection): no map lookup for it.
  private lastPublisher = -1
  private lastSequence: Sequence | undefined

  constructor(private readonly counters: {readonly window: Window}) {}

  received(bodyBytes: number): void {
    const window = this.counters.window
    window.received++
    window.bytes += bodyBytes
  }

  marker(publisher: number, seq: number, sentMicros: number): void {
    const window = this.counters.window
    window.latency.record(nowMicros() - sentMicros)
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
