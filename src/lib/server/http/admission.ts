import type {Server} from 'node:http'
import type {Socket} from 'node:net'
import type {AnswerTally} from '../ops/answers.js'
import type {AccessLog} from '../ops/access-log.js'
import type {ConnectionCap} from './connection-cap.js'
import type {ConnectionLimit} from './connection-limit.js'
import {rawErrorResponse} from './http-error.js'
import {endAndLinger} from './linger.js'
import {addressOf, peerOf} from './peer.js'

/**
 * Which connections the server takes: the server-wide cap
 * (connection-cap.ts) and the per-address limit. Past the cap an HTTP
 * connection is answered 503 and closed; a TLS one is closed at once, before
 * a handshake that would only cost CPU. Past the per-address limit a client
 * gets 503 as soon as it is connected (over TLS once the handshake is done).
 * A request sent on a refused connection meanwhile is never handled (see
 * router.ts).
 */
export class Admission {
  private readonly refused = new WeakSet<Socket>()

  constructor(
    readonly cap: ConnectionCap,
    private readonly perIp: ConnectionLimit | undefined,
    private readonly serverHeader: string,
    private readonly answers: AnswerTally,
    private readonly accessLog: AccessLog,
  ) {}

  /** The connection was refused and has had its answer: nothing it sends is handled. */
  isRefused(socket: Socket): boolean {
    return this.refused.has(socket)
  }

  /** Counts and admits (or refuses) every connection the listener accepts. */
  watch(server: Server, secure: boolean): void {
    // Named while the peer is surely there to ask (see peer.ts).
    if (secure) server.on('secureConnection', peerOf)
    server.on('connection', (socket: Socket) => {
      if (!secure) peerOf(socket)
      const verdict = this.cap.admit(socket)
      if (verdict === 'admit') return
      if (verdict === 'drop' || secure) socket.destroy()
      else this.refuse(socket, `the server is at its connection limit (${this.cap.max}); try again later`)
    })

    const limit = this.perIp
    if (!limit) return
    server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
      if (socket.destroyed || this.refused.has(socket) || limit.admit(socket)) return
      const reason = `too many connections from ${addressOf(socket)} (the limit is ${limit.max})`
      this.accessLog.refusedConnection(socket, 503, reason)
      this.refuse(socket, reason)
    })
  }

  private refuse(socket: Socket, reason: string): void {
    this.refused.add(socket)
    this.answers.count(503)
    endAndLinger(socket, rawErrorResponse(503, this.serverHeader, reason, {'Retry-After': '5'}))
  }
}
