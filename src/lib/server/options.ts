import {defaultsOf, type Defaulted} from './option-row.js'
import {OPTION_TABLE} from './option-table.js'
import type {SlowPolicy} from './stream/socket-writer.js'
import type {Logger} from './ops/logger.js'
import type {FramingPolicy} from './stream/framing.js'
import type {HistorySync} from '../history/store.js'
import type {BusLink} from '../bus/link.js'
import type {AccessLogLimits} from './ops/access-log.js'

export interface BusServerOptions {
  /** HTTP port; 0 picks a free one. Default 8888. */
  port?: number
  /** Address to listen on; default every interface. */
  address?: string
  /** HTTPS port, served when a certificate is given; 0 picks a free one. Default 4444. */
  sslPort?: number
  /** PEM certificate (chain); may hold the key too. */
  cert?: string | Buffer
  /** PEM private key; default: the one inside `cert`. */
  key?: string | Buffer
  /** Serve other paths from this folder. */
  docroot?: string
  /** Every request must carry Basic auth with this password. */
  secret?: string
  /** An ACL file (see acl.ts and `serve --acl`): users, password hashes, and the channels each may publish and subscribe to. Not with `secret`. */
  acl?: string
  /** Largest message body in bytes. Default 8 MiB. */
  maxMessageSize?: number
  /** Largest multipart/form-data request in bytes. Default 64 MiB. */
  maxRequestSize?: number
  /** Bytes all request bodies still arriving may hold together; past it, new publishes get 503. 0 for no limit. Default 256 MiB. */
  maxBodyMemory?: number
  /** Unsent bytes past which a subscriber is behind: slow once it stays behind for `slowTimeout` seconds. Default 1 MiB. */
  maxPending?: number
  /** Seconds a subscriber may stay behind (over `maxPending` at every message) before it is slow. Default 10. */
  slowTimeout?: number
  /** What happens to a slow subscriber. Default disconnect. */
  slowPolicy?: SlowPolicy
  /** Most subscriptions at once; 0 for no limit. */
  maxSubscribers?: number
  /** The multipart boundary; default a random one per server. */
  boundary?: string
  /**
   * How multipart streams are framed when the URL does not say (`?framing=`):
   * `auto` (default) frames them the 2007 way for the 2007 clients, known by
   * their User-Agent, and by RFC 2046 for everyone else.
   */
  framing?: FramingPolicy
  /** Messages kept for subscribers that resume, all channels together; 0 for none. Default 10000. */
  history?: number
  /** Bytes of messages kept, bodies and header strings; 0 for no limit but `history`. Default 64 MiB. */
  historyBytes?: number
  /** Seconds a message is kept; 0 for no limit but `history`. Default 3600. */
  historyAge?: number
  /** Keep the history in append-only files in this folder, read back at start-up. */
  historyDir?: string
  /**
   * The log the bus orders its messages through, shared with other
   * processes (link.ts): a cluster worker's link to its primary, a Redis
   * stream. Default: this process alone (with `historyDir`, on disk).
   */
  link?: BusLink
  /** With `historyDir`: when a publish is answered. Default `always` (once its record is on disk). */
  historySync?: HistorySync
  /** Seconds between SSE heartbeat comments; 0 for none. Default 30. */
  heartbeat?: number
  /** Origins allowed cross-origin access (`*` for any); default none, and no CORS headers. */
  cors?: string[]
  /** Seconds a client has to send a request's whole head (slowloris); then 408. Default 10. */
  headerTimeout?: number
  /** Seconds a request body may stall (no byte arriving) before the connection is dropped and nothing published. Default 30. */
  bodyTimeout?: number
  /** Seconds a keep-alive connection may wait between requests. Default 30. Subscriptions are never idle-closed. */
  idleTimeout?: number
  /**
   * Most connections open at once, HTTP and HTTPS together; past it, 503.
   * Default: the open-file limit less a reserve (fd-limit.ts); 0 for no cap.
   */
  maxConnections?: number
  /** Most connections open at once from one client address; 0 for no limit. */
  maxConnectionsPerIp?: number
  /** Publishes per second per client address (a token bucket, bursts of as many); past it, 429. 0 for no limit. */
  rateLimit?: number
  /**
   * Failed logins (`secret` or `acl`) per client address, in a burst and per
   * minute; a user name of the ACL gets ten times as many from all clients
   * together. Past it, that client's (or user's) logins get 429 with
   * Retry-After, unchecked. Default 10; 0 for no limit.
   */
  maxLoginFailures?: number
  /** Most channels with subscribers at once; a subscription that would add one more gets 503. 0 for no limit. */
  maxChannels?: number
  /** Seconds between `stats` log lines (counters, memory, event-loop delay); 0 for none. */
  statsInterval?: number
  /**
   * `[ADDRESS:]PORT` (ADDRESS 127.0.0.1 when not given) of a listener of
   * its own serving `/metrics` (Prometheus text), `/livez` and `/readyz`;
   * see `readiness` and `url('metrics')`. None unless given.
   */
  metrics?: string
  /** Deliveries between two looks at the clock: a fan-out that has held the event loop FAN_OUT_TURN_MS goes on in the next turn. Default FAN_OUT_SLICE (50). */
  fanOutSlice?: number
  /** Milliseconds a fan-out may hold the event loop before it goes on in the next turn. Default FAN_OUT_TURN_MS (0.5); 0: a turn for every slice. */
  fanOutTurnMs?: number
  logger?: Logger
  /** How many refused requests the access log writes a line for, and how often it summarises the rest. ACCESS_LOG_LIMITS when not given: 10 lines a second, bursts of 100, a summary every 10 s. */
  accessLog?: AccessLogLimits
}

/** The defaults, from the option table (option-table.ts). */
export const DEFAULTS = defaultsOf(OPTION_TABLE)

/** The options a server runs with: every option that has a default is there. */
export type ResolvedOptions = Required<Pick<BusServerOptions, Defaulted<typeof OPTION_TABLE>>> & Omit<BusServerOptions, Defaulted<typeof OPTION_TABLE>>
