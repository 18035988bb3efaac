import type {Socket} from 'node:net'
import type {Bus} from '../bus/bus.js'
import type {StreamEncoders} from '../protocol/formats.js'
import type {AccessControl} from './access/acl.js'
import type {ConnectionCap} from './http/connection-cap.js'
import type {ConnectionLimit} from './http/connection-limit.js'
import type {BodyBudget} from './publish/body-budget.js'
import type {CorsPolicy} from './access/cors.js'
import type {Docroot} from './pages/docroot.js'
import type {Logger} from './ops/logger.js'
import type {LoginGuard} from './access/login-guard.js'
import type {RateLimiter} from './access/rate-limit.js'
import type {ResolvedOptions} from './options.js'
import type {SocketWriter} from './stream/socket-writer.js'
import type {Streams} from './stream/streams.js'
import type {Viewer} from './pages/viewer.js'

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
  /** The connections that became subscription streams. */
  readonly streams: Streams
  /** Users and what they may do (`--acl`); undefined: no ACL. */
  readonly access?: AccessControl
  /** Connections refused at connect time (the server's cap, or too many from one address): their requests are never handled. */
  readonly refused: WeakSet<Socket>
  /** Open connections, HTTP and HTTPS together, against `--max-connections`. */
  readonly connections: ConnectionCap
  /** Open connections per client address, HTTP and HTTPS together (`--max-connections-per-ip`). */
  readonly connectionsPerIp: ConnectionLimit | undefined
  /** Publishes per second per client address (`--rate-limit`). */
  readonly rateLimiter: RateLimiter | undefined
  /** Failed logins per client and user (`--max-login-failures`), for `--secret` and `--acl`. */
  readonly logins: LoginGuard
}
