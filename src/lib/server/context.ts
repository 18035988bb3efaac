import type {Socket} from 'node:net'
import type {Bus} from '../bus/bus.js'
import type {StreamEncoders} from '../protocol/formats.js'
import type {AccessControl} from './acl.js'
import type {BodyBudget} from './body-budget.js'
import type {CorsPolicy} from './cors.js'
import type {Docroot} from './docroot.js'
import type {Logger} from './logger.js'
import type {RateLimiter} from './rate-limit.js'
import type {ResolvedOptions} from './options.js'
import type {SocketWriter} from './socket-writer.js'
import type {HttpSubscription} from './subscription.js'
import type {Viewer} from './viewer.js'

/** What every request handler shares: one per server, for HTTP and HTTPS alike. */
export interface ServerContext {
  readonly bus: Bus
  readonly encoders: StreamEncoders
  readonly writer: SocketWriter
  /** Memory held by request bodies still arriving (`--max-body-memory`). */
  readonly bodyBudget: BodyBudget
  readonly options: ResolvedOptions
  readonly logger: Logger
  readonly docroot: Docroot | undefined
  /** The page for browsers that navigate to a bus URL, or why it could not be read. */
  readonly viewer: Viewer | Error
  /** Cross-origin access (`--cors`); undefined: no CORS headers at all. */
  readonly cors: CorsPolicy | undefined
  readonly serverHeader: string
  /** Live subscriptions, to end them properly on shutdown. */
  readonly subscriptions: Set<HttpSubscription>
  /** Connections that became subscription streams: no further request is read from them. */
  readonly streaming: WeakSet<Socket>
  /** Users and what they may do (`--acl`); undefined: no ACL. */
  readonly access?: AccessControl
  /** Connections refused at connect time (too many from one address): their requests are never handled. */
  readonly refused: WeakSet<Socket>
  /** Publishes per second per client address (`--rate-limit`). */
  readonly rateLimiter: RateLimiter | undefined
}

/** The client's address; IPv4 clients of a dual-stack listener as plain IPv4, so limits count them as one. */
export function addressOf(socket: Socket): string {
  return (socket.remoteAddress ?? '?').replace(/^::ffff:(?=\d+\.)/, '')
}

/** The client's address and port, for the log. */
export function peerOf(socket: Socket): string {
  const address = addressOf(socket)
  return address.includes(':') ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`
}

/** A channel as the log names it. */
export function channelLabel(channel: string): string {
  return channel === '' ? '(every channel)' : channel
}
