import {once} from 'node:events'
import type {Server} from 'node:http'
import type {SecureContextOptions} from 'node:tls'
import type {AddressInfo} from 'node:net'
import {Bus, startHorizon} from '../bus/bus.js'
import {EmbeddedLink} from '../bus/embedded-link.js'
import {MessageLog} from '../history/message-log.js'
import {SegmentStore} from '../history/segment-store.js'
import {createEncoders} from '../protocol/formats.js'
import {MsgbusError, messageOf, type MsgbusErrorCode} from '../util/errors.js'
import {formatSize} from '../util/size.js'
import {VERSION} from '../version.js'
import {channelLabel} from './http/peer.js'
import {AccessControl, openAccess} from './access/acl.js'
import {Gate} from './access/gate.js'
import {BodyBudget} from './publish/body-budget.js'
import {BodyStalls} from './publish/body-stalls.js'
import {AnswerCork} from './http/answer-cork.js'
import {CorsPolicy} from './access/cors.js'
import {FRAMING_POLICIES} from './stream/framing.js'
import {startHeartbeat} from './stream/heartbeat.js'
import {startStats} from './ops/stats.js'
import {AccessLog} from './ops/access-log.js'
import {describeProtections} from './ops/protections.js'
import {Docroot} from './pages/docroot.js'
import {createRequestHandler} from './http/router.js'
import {createListener, secureOptions} from './http/listener.js'
import {ConnectionCap} from './http/connection-cap.js'
import {ConnectionLimit} from './http/connection-limit.js'
import {connectionsWithin, openFileLimit, reservedDescriptors} from './http/fd-limit.js'
import {RateLimiter} from './access/rate-limit.js'
import {LoginGuard} from './access/login-guard.js'
import {Admission} from './http/admission.js'
import type {ServerCounters} from './ops/counters.js'
import {AnswerTally} from './ops/answers.js'
import {Readiness} from './ops/health.js'
import {LatencyBuckets} from './ops/latency-buckets.js'
import {closeListener, createMetricsListener, parseMetricsAddress, type MetricsAddress} from './ops/metrics-listener.js'
import {LogLevel} from './ops/log.js'
import {DEFAULTS, type BusServerOptions, type ResolvedOptions} from './options.js'
import {nativeSender} from './stream/native-send.js'
import {plural} from '../util/plural.js'
import {hardBound, SocketWriter, type WriteTarget} from './stream/socket-writer.js'
import {Streams} from './stream/streams.js'
import type {HttpSubscription} from './stream/subscription.js'
import {Viewer} from './pages/viewer.js'

export interface Listening {
  http: AddressInfo
  https?: AddressInfo
  /** `metrics`: the listener of /metrics, /livez and /readyz. */
  metrics?: AddressInfo
}

/**
 * Connections the kernel may hold, handshake done, until we accept them.
 * Node accepts one per turn of the event loop, so under load they queue
 * here; past the limit Linux drops SYNs and handshake ACKs and clients
 * retry after 1, 2, 4, 8... s, so a burst the server would have taken in
 * within a second costs seconds. Node's default is 511; Linux caps it at
 * net.core.somaxconn (4096 by default since 5.4).
 */
const LISTEN_BACKLOG = 4096

function hostForUrl(address: AddressInfo): string {
  const host = address.address === '::' || address.address === '0.0.0.0' || address.address === '' ? '127.0.0.1' : address.address
  return host.includes(':') ? `[${host}]` : host
}

/** The running server's parts that outlive start(): for counters, reloads and stop. */
interface Parts {
  writer: SocketWriter
  streams: Streams
  admission: Admission
  gate: Gate
  logins: LoginGuard
  /** `--acl`, to reload. */
  acl: AccessControl | undefined
  bodyBudget: BodyBudget
  stalls: BodyStalls
  accessLog: AccessLog
}

/**
 * The msgbus server: a Bus behind HTTP (and HTTPS when a certificate is
 * given). Use it in-process: `const server = createBus({port: 0}); await
 * server.start(); ... await server.stop()`.
 */
export class BusServer {
  readonly bus: Bus
  readonly options: ResolvedOptions
  private readonly servers: Server[] = []
  private httpsServer: (Server & {setSecureContext(options: SecureContextOptions): void}) | undefined
  private parts: Parts | undefined
  private listening: Listening | undefined
  private stopHeartbeat = () => {}
  private stopStats = () => {}
  private stopTrim = () => {}
  /** `metrics`: apart from `servers`, as it outlives them on stop (readiness says the server is going). */
  private metricsServer: Server | undefined
  private stopping = false
  private readonly answers = new AnswerTally()
  private readonly publishLatency = new LatencyBuckets()
  /**
   * What `/readyz` reports (`metrics`): named checks, each saying what is
   * wrong or nothing. The server's own: its listeners are bound, its history
   * store (`historyDir`) writes, it is not shutting down. Whatever the
   * server comes to depend on (a broker link) adds its own with `add()`.
   */
  readonly readiness = new Readiness()

  constructor(options: BusServerOptions = {}) {
    const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))
    this.options = {...DEFAULTS, ...given} as ResolvedOptions
    const {history, historyBytes, historyAge} = this.options
    const log = new MessageLog({count: history, bytes: historyBytes, ageMs: historyAge * 1000}, startHorizon())
    this.bus = new Bus({fanOutSlice: this.options.fanOutSlice, fanOutTurnMs: this.options.fanOutTurnMs, log})
    this.readiness.add('listeners', () => {
      if (!this.listening) return 'not listening yet'
      const closed = this.servers.filter((server) => !server.listening).length
      return closed > 0 ? `${closed} of ${this.servers.length} listeners closed` : undefined
    })
    this.readiness.add(this.options.link?.name ?? 'history', () => this.bus.linkFailure)
    this.bus.on('refused', (why) => this.logger.warn(this.bus.linkName, `an entry of the shared log was passed over: ${why}`))
    this.readiness.add('shutdown', () => (this.stopping ? 'the server is shutting down' : undefined))
  }

  private get logger() {
    return this.options.logger
  }

  /**
   * Binds the listeners. Rejects with a MsgbusError, a one-line reason and
   * its code: ERR_MSGBUS_PORT_IN_USE, ERR_MSGBUS_LISTEN_FAILED,
   * ERR_MSGBUS_TLS_INVALID (certificate or key), ERR_MSGBUS_DOCROOT_INVALID,
   * ERR_MSGBUS_ACL_INVALID or ERR_MSGBUS_ACL_UNREADABLE (an AclError),
   * ERR_MSGBUS_OPTION_INVALID (a CorsOptionError among them),
   * ERR_MSGBUS_HISTORY_FAILED (`historyDir` unusable, or in use by another server).
   */
  async start(): Promise<Listening> {
    const {options, logger} = this
    const largestBody = Math.max(options.maxMessageSize, options.maxRequestSize)
    if (options.maxBodyMemory > 0 && options.maxBodyMemory < largestBody) {
      throw new MsgbusError(
        'ERR_MSGBUS_OPTION_INVALID',
        `--max-body-memory (${formatSize(options.maxBodyMemory)}) is less than the largest body a publish may have ` +
          `(${formatSize(largestBody)}, --max-message-size and --max-request-size): raise it, or lower those`,
      )
    }

    if (!FRAMING_POLICIES.includes(options.framing)) {
      throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `unknown framing ${JSON.stringify(options.framing)} (known: ${FRAMING_POLICIES.join(', ')})`)
    }

    const metricsAt = options.metrics === undefined ? undefined : parseMetricsAddress(options.metrics)

    const docroot = options.docroot === undefined ? undefined : await Docroot.open(options.docroot, logger)
    const cors = options.cors === undefined || options.cors.length === 0 ? undefined : new CorsPolicy(options.cors)
    // Its sweep timer is unreferenced: a start that fails below leaves nothing running.
    const logins = new LoginGuard(options.maxLoginFailures, logger)
    const access = await openAccess(options, logins)
    const viewer = await Viewer.load()
    if (viewer instanceof Error) logger.warn('viewer', `${viewer.message}: browsers get 404 on bus URLs`)
    const who = (target: WriteTarget) => `${target.peer} ${channelLabel(target.channel)}`
    const seconds = (ms: number) => (ms > 0 ? `, behind for ${(ms / 1000).toFixed(1)} s` : '')
    const native = nativeSender()
    const writer = new SocketWriter(
      {
        maxPending: options.maxPending,
        slowTimeoutMs: options.slowTimeout * 1000,
        hardBound: hardBound(options),
        policy: options.slowPolicy,
      },
      {
        onSlowDisconnect: (target, pending, ms) => logger.warn('slow', `${who(target)}: disconnected with ${pending} bytes unsent${seconds(ms)}`),
        onDropStart: (target, pending, ms) => logger.warn('slow', `${who(target)}: dropping messages, ${pending} bytes unsent${seconds(ms)}`),
        onDropEnd: (target, dropped) => logger.warn('slow', `${who(target)}: caught up after ${plural(dropped, 'dropped message')}`),
      },
      native.sender,
    )
    const encoders = createEncoders(options.boundary)
    const serverHeader = `msgbus/${VERSION}`
    const streams = new Streams(this.bus, writer, logger, options.maxPending)
    const bodyBudget = new BodyBudget(options.maxBodyMemory, largestBody, logger)
    const stalls = new BodyStalls(options.bodyTimeout, logger)
    const connectionsPerIp = options.maxConnectionsPerIp > 0 ? new ConnectionLimit(options.maxConnectionsPerIp) : undefined
    const accessLog = new AccessLog(logger, options.accessLog)
    const admission = new Admission(this.connectionCap(), connectionsPerIp, serverHeader, this.answers, accessLog)
    const gate = new Gate(access, cors, options.rateLimit > 0 ? new RateLimiter(options.rateLimit) : undefined)
    const acl = access instanceof AccessControl ? access : undefined
    this.parts = {writer, streams, admission, gate, logins, acl, bodyBudget, stalls, accessLog}
    const handler = createRequestHandler({
      gate,
      publisher: {bus: this.bus, limits: options, bodyBudget, stalls, answerCork: new AnswerCork(), logger, serverHeader, latency: this.publishLatency, flushed: () => writer.whenFlushed()},
      subscriber: {
        bus: this.bus,
        encoders,
        framing: options.framing,
        maxSubscribers: options.maxSubscribers,
        maxChannels: options.maxChannels,
        viewer,
        streams,
        serverHeader,
      },
      docroot,
      streams,
      admission,
      logger,
      accessLog,
      serverHeader,
    })
    const listenerContext = {headerTimeout: options.headerTimeout, idleTimeout: options.idleTimeout, serverHeader, streams, admission, answers: this.answers, accessLog}
    const http = createListener(listenerContext, handler)
    this.servers.push(http)
    let https: Server | undefined
    if (options.cert !== undefined) {
      https = createListener(listenerContext, handler, secureOptions(options.cert, options.key ?? options.cert))
      this.httpsServer = https as typeof this.httpsServer
      this.servers.push(https)
    }

    let listening: Listening
    try {
      // First: probes get their answers (not ready) while the history is read back.
      const metrics = metricsAt && (await this.startMetrics(metricsAt, serverHeader))
      await this.openLink()
      listening = {http: await this.bind(http, options.port, 'HTTP')}
      if (metrics) listening.metrics = metrics
      if (https) listening.https = await this.bind(https, options.sslPort, 'HTTPS')
      this.listening = listening
      this.stopHeartbeat = startHeartbeat(options.heartbeat * 1000, streams, 'sse', encoders.sse.heartbeat)
      this.stopStats = startStats(options.statsInterval * 1000, () => this.counters(), logger)
      this.stopTrim = startTrim(this.bus.log)
    } catch (error) {
      await this.closeServers()
      await this.closeMetrics()
      await this.bus.close().catch(() => {})
      throw error
    }

    const where = (address: AddressInfo) => (this.options.address === '' ? `*:${address.port} (all interfaces)` : `${hostForUrl(address)}:${address.port}`)
    logger.log(LogLevel.Always, 'listen', `HTTP on ${where(listening.http)}`)
    if (listening.https) logger.log(LogLevel.Always, 'listen', `HTTPS on ${where(listening.https)}`)
    // The address as bound (0.0.0.0 says it is reachable from elsewhere), not as a local client would reach it.
    const metrics = listening.metrics && `${listening.metrics.family === 'IPv6' ? `[${listening.metrics.address}]` : listening.metrics.address}:${listening.metrics.port}`
    if (metrics) logger.log(LogLevel.Always, 'listen', `metrics on ${metrics} (/metrics, /livez, /readyz)`)
    if (docroot) logger.log(LogLevel.Always, 'listen', `document root ${docroot.root}`)
    if (acl) logger.log(LogLevel.Always, 'listen', `acl ${acl.current.file} (${acl.current.describe()})`)
    logger.log(LogLevel.Always, 'writer', native.sender ? `native sender (${native.how})` : `Node streams (native sender: ${native.why})`)
    const protections = describeProtections(options, {
      acl: acl && {file: acl.current.file, users: acl.current.describe()},
      connections: admission.cap.max,
    })
    logger.log(LogLevel.Always, 'protections', protections.detail, protections.fields)
    return listening
  }

  /** `metrics`: prom-client is loaded now, and only now, and the listener bound. */
  private async startMetrics(at: MetricsAddress, serverHeader: string): Promise<AddressInfo> {
    const {ServerMetrics} = await import('./ops/metrics.js')
    const metrics = new ServerMetrics(() => this.counters())
    this.metricsServer = createMetricsListener({readiness: this.readiness, scrape: () => metrics.scrape(), serverHeader})
    return this.bind(this.metricsServer, at.port, 'metrics', at.host)
  }

  private async closeMetrics(): Promise<void> {
    const server = this.metricsServer
    this.metricsServer = undefined
    await closeListener(server)
  }

  /**
   * The link the bus orders messages through (`link`), or `--history-dir`:
   * the history written to disk; either way, what it holds is read into the
   * log before the first connection.
   */
  private async openLink(): Promise<void> {
    const {historyDir: dir, historySync, link} = this.options
    if (link) {
      if (dir !== undefined) throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--history-dir is for a server alone: with a ${link.name} link, the history is the shared log's`)
      await this.bus.open(link)
      this.logger.log(LogLevel.Always, 'history', `${this.bus.log.size} messages from the ${link.name} link (horizon ${this.bus.log.horizon})`)
      return
    }

    if (dir === undefined) return
    if (!this.bus.log.enabled) throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', '--history-dir needs --history above 0')
    await this.bus.open(new EmbeddedLink(new SegmentStore(dir, historySync, this.logger)))
    const {log} = this.bus
    const oldest = log.size > 0 ? `oldest ${log.at(log.first).id}, ` : ''
    this.logger.log(LogLevel.Always, 'history', `${log.size} messages from ${dir} (${oldest}horizon ${log.horizon})`)
  }

  /**
   * The connection cap: `maxConnections`, or by default as many as the
   * open-file limit leaves room for, so the server refuses with a 503 (and
   * says so in the log) before the kernel refuses it descriptors.
   */
  private connectionCap(): ConnectionCap {
    const {maxConnections} = this.options
    const limit = openFileLimit()
    const fits = limit === undefined ? undefined : connectionsWithin(limit)
    const max = maxConnections ?? fits ?? 0
    if (fits !== undefined && max > fits) {
      this.logger.warn('limit', `--max-connections ${max} is more than the open-file limit (${limit}) leaves room for (${fits}): connections past that may be closed unanswered`)
    }

    const hardMax = max === 0 ? Infinity : max + Math.floor(reservedDescriptors(limit ?? max) / 2)
    const origin = maxConnections === undefined ? `${max}, from the open-file limit of ${limit}` : `--max-connections ${max}`
    return new ConnectionCap(max, hardMax, this.logger, origin)
  }

  private async bind(server: Server, port: number, name: string, address = this.options.address): Promise<AddressInfo> {
    server.listen({port, host: address === '' ? undefined : address, backlog: LISTEN_BACKLOG})
    try {
      await once(server, 'listening')
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      const where = `${address || '*'}:${port}`
      const fail = (failure: MsgbusErrorCode, message: string) => new MsgbusError(failure, message, {cause: error})
      if (code === 'EADDRINUSE') throw fail('ERR_MSGBUS_PORT_IN_USE', `${name} port ${where} is already in use`)
      if (code === 'EACCES') throw fail('ERR_MSGBUS_LISTEN_FAILED', `${name} port ${where} needs privileges to bind`)
      if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw fail('ERR_MSGBUS_LISTEN_FAILED', `${name} address ${address} is not available on this machine`)
      throw fail('ERR_MSGBUS_LISTEN_FAILED', `cannot listen on ${where} for ${name}: ${messageOf(error)}`)
    }

    // Listening, a server's errors are failed accepts (out of descriptors, EMFILE): the
    // connection is lost, the server is not, and the operator must hear of it.
    server.on('error', (error: NodeJS.ErrnoException) => {
      const why = error.code === 'EMFILE' || error.code === 'ENFILE' ? 'out of file descriptors (raise ulimit -n, or lower --max-connections)' : error.message
      this.logger.warn('accept', `${name}: a connection could not be accepted: ${why}`)
    })
    return server.address() as AddressInfo
  }

  /** Where the server listens, as a base URL a client on this machine can use. */
  url(kind: 'http' | 'https' | 'metrics' = 'http'): string {
    const address = this.listening?.[kind]
    if (!address) throw new MsgbusError('ERR_MSGBUS_SERVER_STATE', kind === 'metrics' ? 'not listening for metrics (no metrics option)' : `not listening for ${kind.toUpperCase()}`)
    return `${kind === 'https' ? 'https' : 'http'}://${hostForUrl(address)}:${address.port}`
  }

  get addresses(): Listening | undefined {
    return this.listening
  }

  /** The open subscription streams: each one's socket, channel, peer and what it has received. */
  get subscriptions(): Iterable<HttpSubscription> {
    return this.parts?.streams ?? []
  }

  /**
   * Re-reads the ACL file (`--acl`; serve calls this on SIGHUP). Open
   * subscriptions follow the new ACL from their next message on. On any error
   * the ACL in force stays, and this rejects with a one-line `file:line:` reason
   * (an AclError).
   */
  async reloadAcl(): Promise<{file: string; users: number; description: string}> {
    const access = this.parts?.acl
    if (!access) throw new MsgbusError('ERR_MSGBUS_SERVER_STATE', this.parts ? 'no ACL to reload (the server runs without --acl)' : 'the server has not started')
    const acl = await access.reload()
    return {file: acl.file, users: acl.userCount, description: acl.describe()}
  }

  /**
   * Serves new HTTPS connections with another certificate and key (serve
   * does this on SIGHUP). Connections already open, subscriptions among
   * them, keep the one they began with. Throws with a one-line reason
   * (ERR_MSGBUS_TLS_INVALID), and changes nothing, when the pair is unusable.
   */
  reloadCertificate(cert: string | Buffer, key: string | Buffer = cert): void {
    if (!this.httpsServer) throw new MsgbusError('ERR_MSGBUS_SERVER_STATE', 'no certificate to reload (the server runs without HTTPS)')
    this.httpsServer.setSecureContext(secureOptions(cert, key))
  }

  counters(): ServerCounters {
    const parts = this.parts
    const answers = this.answers.byCode()
    if (parts && parts.streams.opened > 0) answers[200] = (answers[200] ?? 0) + parts.streams.opened
    return {
      ...this.bus.counters(),
      dropped: parts?.writer.droppedTotal ?? 0,
      slowDisconnects: parts?.writer.slowDisconnects ?? 0,
      connections: parts?.admission.cap.open ?? 0,
      connectionsRefused: parts?.admission.cap.refusedTotal ?? 0,
      logins: {
        ...(parts?.logins.counters ?? {failed: 0, refused: 0}),
        cached: parts?.acl?.verifier.counters.hits ?? 0,
        hashes: {...parts?.acl?.verifier.counters.byKind},
      },
      bodyMemory: parts?.bodyBudget.held ?? 0,
      bodyRefusals: parts?.bodyBudget.refusals ?? 0,
      history: {messages: this.bus.log.size, bytes: this.bus.log.bytes},
      deliveries: parts?.streams.deliveries() ?? {multipart: 0, sse: 0, ndjson: 0, raw: 0},
      bytesOut: parts?.writer.bytesOut ?? 0,
      answers,
      publishLatency: this.publishLatency.snapshot(),
    }
  }

  /**
   * Stops accepting, ends every subscription stream properly, lets requests
   * in flight finish, and closes whatever is left after `graceMs`.
   */
  async stop(graceMs = 500): Promise<void> {
    if (this.servers.length === 0) return
    this.stopping = true
    this.logger.log(LogLevel.Always, 'stop', `ending ${this.parts?.streams.size ?? 0} subscriptions`)
    this.stopHeartbeat()
    this.stopStats()
    this.stopTrim()
    this.parts?.gate.close()
    this.parts?.stalls.close()
    this.parts?.logins.close()
    this.parts?.accessLog.close()
    const closed = this.closeServers()
    this.parts?.streams.endAll()
    for (const server of this.servers) server.closeIdleConnections()
    const timer = setTimeout(() => {
      for (const server of this.servers) server.closeAllConnections()
      this.parts?.streams.destroyAll()
    }, graceMs)
    await closed
    clearTimeout(timer)
    await this.bus.close().catch((error: unknown) => this.logger.warn(this.bus.linkName, messageOf(error)))
    this.servers.length = 0
    await this.closeMetrics()
  }

  private closeServers(): Promise<unknown> {
    return Promise.all(
      this.servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))),
    )
  }
}

/** Lets go of messages past `--history-age` on a quiet bus too (a publish trims as it appends). */
export function startTrim(log: MessageLog): () => void {
  if (!log.enabled || log.limits.ageMs <= 0) return () => {}
  const timer = setInterval(() => log.trim(), Math.min(60_000, Math.max(1000, log.limits.ageMs / 10)))
  timer.unref()
  return () => clearInterval(timer)
}

export function createBus(options: BusServerOptions = {}): BusServer {
  return new BusServer(options)
}
