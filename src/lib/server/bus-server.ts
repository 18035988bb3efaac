import {once} from 'node:events'
import {createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {createServer as createHttpsServer} from 'node:https'
import type {AddressInfo} from 'node:net'
import {createSecureContext} from 'node:tls'
import {Bus, type BusCounters} from '../bus/bus.js'
import {createEncoders} from '../protocol/formats.js'
import {VERSION} from '../version.js'
import {channelLabel, type ServerContext} from './context.js'
import {CorsPolicy} from './cors.js'
import {startHeartbeat} from './heartbeat.js'
import {rawErrorResponse} from './http-error.js'
import {Docroot} from './docroot.js'
import {createRequestHandler} from './handler.js'
import {LogLevel, silentLogger} from './logger.js'
import {DEFAULTS, type BusServerOptions, type ResolvedOptions} from './options.js'
import {SocketWriter, type WriteTarget} from './socket-writer.js'
import type {HttpSubscription} from './subscription.js'
import {Viewer} from './viewer.js'

export interface ServerCounters extends BusCounters {
  /** Messages skipped for slow subscribers (policy drop). */
  dropped: number
  /** Slow subscribers disconnected (policy disconnect). */
  slowDisconnects: number
}

export interface Listening {
  http: AddressInfo
  https?: AddressInfo
}

function hostForUrl(address: AddressInfo): string {
  const host = address.address === '::' || address.address === '0.0.0.0' || address.address === '' ? '127.0.0.1' : address.address
  return host.includes(':') ? `[${host}]` : host
}

/**
 * The msgbus server: a Bus behind HTTP (and HTTPS when a certificate is
 * given). Use it in-process: `const server = createBus({port: 0}); await
 * server.start(); ... await server.stop()`.
 */
export class BusServer {
  readonly bus = new Bus()
  readonly options: ResolvedOptions
  private readonly servers: Server[] = []
  private readonly subscriptions = new Set<HttpSubscription>()
  private context: ServerContext | undefined
  private listening: Listening | undefined
  private stopHeartbeat = () => {}

  constructor(options: BusServerOptions = {}) {
    const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))
    this.options = {...DEFAULTS, logger: silentLogger, ...given} as ResolvedOptions
  }

  private get logger() {
    return this.options.logger
  }

  /** Binds the listeners. Rejects with a one-line reason (busy port, bad certificate, missing document root). */
  async start(): Promise<Listening> {
    const {options, logger} = this
    const docroot = options.docroot === undefined ? undefined : await Docroot.open(options.docroot)
    const cors = options.cors === undefined || options.cors.length === 0 ? undefined : new CorsPolicy(options.cors)
    const viewer = await Viewer.load()
    if (viewer instanceof Error) logger.warn('viewer', `${viewer.message}: browsers get 404 on bus URLs`)
    const who = (target: WriteTarget) => `${target.peer} ${channelLabel(target.channel)}`
    const writer = new SocketWriter(options.maxPending, options.slowPolicy, {
      onSlowDisconnect: (target, pending) => logger.warn('slow', `${who(target)}: disconnected with ${pending} bytes unsent`),
      onDropStart: (target, pending) => logger.warn('slow', `${who(target)}: dropping messages, ${pending} bytes unsent`),
      onDropEnd: (target, dropped) => logger.warn('slow', `${who(target)}: caught up after ${dropped} dropped messages`),
    })
    const encoders = createEncoders(options.boundary)
    const context: ServerContext = {
      bus: this.bus,
      encoders,
      writer,
      options,
      logger,
      docroot,
      viewer,
      cors,
      serverHeader: `msgbus/${VERSION}`,
      subscriptions: this.subscriptions,
      streaming: new WeakSet(),
    }
    this.context = context
    const handler = createRequestHandler(context)
    const listen = (server: Server) => {
      server.on('request', (req: IncomingMessage, res: ServerResponse) => handler(req, res))
      server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => handler(req, res, true))
      server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
        if (!socket.writable || error.code === 'ECONNRESET') {
          socket.destroy()
          return
        }

        const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
        const reason = status === 400 ? `bad request: ${error.code ?? error.message}` : undefined
        socket.end(rawErrorResponse(status, context.serverHeader, reason))
      })
      this.servers.push(server)
    }

    const http = createHttpServer()
    listen(http)
    let https: Server | undefined
    if (options.cert !== undefined) {
      const key = options.key ?? options.cert
      try {
        createSecureContext({cert: options.cert, key})
      } catch (error) {
        throw new Error(`certificate or key unusable: ${(error as Error).message}`)
      }

      https = createHttpsServer({cert: options.cert, key, minVersion: 'TLSv1.2'}) as unknown as Server
      listen(https)
    }

    let listening: Listening
    try {
      listening = {http: await this.bind(http, options.port, 'HTTP')}
      if (https) listening.https = await this.bind(https, options.sslPort, 'HTTPS')
      this.listening = listening
      this.stopHeartbeat = startHeartbeat(options.heartbeat * 1000, this.subscriptions, 'sse', encoders.sse.heartbeat)
    } catch (error) {
      await this.closeServers()
      throw error
    }

    const where = (address: AddressInfo) => (this.options.address === '' ? `*:${address.port} (all interfaces)` : `${hostForUrl(address)}:${address.port}`)
    logger.log(LogLevel.Always, 'listen', `HTTP on ${where(listening.http)}`)
    if (listening.https) logger.log(LogLevel.Always, 'listen', `HTTPS on ${where(listening.https)}`)
    if (docroot) logger.log(LogLevel.Always, 'listen', `document root ${docroot.root}`)
    return listening
  }

  private async bind(server: Server, port: number, name: string): Promise<AddressInfo> {
    const {address} = this.options
    server.listen({port, host: address === '' ? undefined : address})
    try {
      await once(server, 'listening')
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      const where = `${address || '*'}:${port}`
      if (code === 'EADDRINUSE') throw new Error(`${name} port ${where} is already in use`)
      if (code === 'EACCES') throw new Error(`${name} port ${where} needs privileges to bind`)
      if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new Error(`${name} address ${address} is not available on this machine`)
      throw new Error(`cannot listen on ${where} for ${name}: ${(error as Error).message}`)
    }

    return server.address() as AddressInfo
  }

  /** Where the server listens, as a base URL a client on this machine can use. */
  url(kind: 'http' | 'https' = 'http'): string {
    const address = this.listening?.[kind]
    if (!address) throw new Error(`not listening for ${kind.toUpperCase()}`)
    return `${kind}://${hostForUrl(address)}:${address.port}`
  }

  get addresses(): Listening | undefined {
    return this.listening
  }

  counters(): ServerCounters {
    return {
      ...this.bus.counters(),
      dropped: this.context?.writer.droppedTotal ?? 0,
      slowDisconnects: this.context?.writer.slowDisconnects ?? 0,
    }
  }

  /**
   * Stops accepting, ends every subscription stream properly, lets requests
   * in flight finish, and closes whatever is left after `graceMs`.
   */
  async stop(graceMs = 500): Promise<void> {
    if (this.servers.length === 0) return
    this.logger.log(LogLevel.Always, 'stop', `ending ${this.subscriptions.size} subscriptions`)
    this.stopHeartbeat()
    const closed = this.closeServers()
    for (const subscription of this.subscriptions) subscription.end()
    for (const server of this.servers) server.closeIdleConnections()
    const timer = setTimeout(() => {
      for (const server of this.servers) server.closeAllConnections()
      // Streams are no longer the HTTP server's to close (see takeover.ts).
      for (const subscription of this.subscriptions) subscription.socket.destroy()
    }, graceMs)
    await closed
    clearTimeout(timer)
    this.servers.length = 0
  }

  private closeServers(): Promise<unknown> {
    return Promise.all(
      this.servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))),
    )
  }
}

export function createBus(options: BusServerOptions = {}): BusServer {
  return new BusServer(options)
}
