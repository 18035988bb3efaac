import type {BusCounters} from '../../bus/bus.js'
import type {StreamFormat} from '../../protocol/stream-encoder.js'
import type {LoginCounters} from '../access/login-guard.js'
import type {BucketCounts} from './latency-buckets.js'

/** What the server has done since it started, as `counters()` returns it and the stats line prints it. */
export interface ServerCounters extends BusCounters {
  /** Messages skipped for slow subscribers (policy drop). */
  dropped: number
  /** Slow subscribers disconnected (policy disconnect). */
  slowDisconnects: number
  /** Connections open now, subscriptions included, HTTP and HTTPS together. */
  connections: number
  /** Connections refused at the server's connection cap since it started. */
  connectionsRefused: number
  logins: LoginCounters & {
    /** Logins answered from the verified cache (`--acl`). */
    cached: number
    /** Password hashes computed, by kind (`scrypt ln=15,r=8,p=1,keylen=32`, `bcrypt cost=10`), unknown users' decoys included. */
    hashes: Record<string, number>
  }
  /** Bytes held by request bodies still arriving, as `--max-body-memory` counts them. */
  bodyMemory: number
  /** Publishes refused with 503 for want of body memory. */
  bodyRefusals: number
  /** The history: messages and bytes kept now (`--history`, `--history-bytes`). */
  history: {messages: number; bytes: number}
  /** Messages written to subscription streams, live and replayed, by stream format. */
  deliveries: Record<StreamFormat, number>
  /** Bytes written to subscription streams' connections: heads, framing and bodies. */
  bytesOut: number
  /** HTTP answers by status code (`"204"`, `"401"`): every answer on the bus's ports, a subscription counted as a 200 when its stream begins. */
  answers: Record<string, number>
  /** Seconds from a publish being handled to its 204, in buckets (latency-buckets.ts). */
  publishLatency: BucketCounts
}
