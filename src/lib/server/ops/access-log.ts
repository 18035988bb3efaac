import type {IncomingMessage, ServerResponse} from 'node:http'
import type {Socket} from 'node:net'
import {parseBasicAuth} from '../access/basic-auth.js'
import {addressOf, peerOf} from '../http/peer.js'
import {LogLevel, type LogFields, type Logger} from './log.js'

/** How many refusal lines the access log writes: the budget an attacker's requests run into. */
export interface AccessLogLimits {
  /** Lines a second, on average. */
  linesPerSecond: number
  /** Lines at once, after a quiet while. */
  burst: number
  /** How long lines are held back before a summary says how many, and of what. */
  summaryMs: number
}

/**
 * 10 lines a second (bursts of 100): about 2 KiB a second, 170 MiB a day
 * of a flood that never stops, which a log rotation copes with; what is held
 * back is summarised every 10 seconds, in one line.
 */
export const ACCESS_LOG_LIMITS: AccessLogLimits = {linesPerSecond: 10, burst: 100, summaryMs: 10_000}

/**
 * 5xx answers that refuse rather than fail: not implemented (a transfer
 * coding), unavailable (a limit reached: the limit logs its own warning),
 * an HTTP version. The rest (500) are the server's own failures, warnings.
 */
const REFUSING_5XX = new Set([501, 503, 505])

/** Longest request target and user name a line quotes; a client chooses them. */
const MAX_QUOTED = 256
/** Client addresses a summary counts separately; the rest are "others", so made-up addresses cost no memory. */
const MAX_ADDRESSES = 1000

/** What a client chose, fit for a one-line log: control characters escaped, and cut short. */
function printable(text: string, max = MAX_QUOTED): string {
  // eslint-disable-next-line no-control-regex
  const escaped = text.replace(/[\u0000-\u001F\u007F"\\]/g, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`))
  return escaped.length > max ? `${escaped.slice(0, max)}...` : escaped
}

/** The request target as logged: the path and query; an absolute-form target (from a proxy) loses its origin, user info and all. */
function targetOf(url: string | undefined): string {
  if (url === undefined) return '-'
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '') || '/' : url
}

/** The user name a request gave (Basic auth), never its password; undefined for none, or none readable. */
function userOf(req: IncomingMessage): string | undefined {
  try {
    return parseBasicAuth(req.headers.authorization)?.user || undefined
  } catch {
    return undefined
  }
}

interface Held {
  count: number
  byStatus: Map<number, number>
  byAddress: Map<string, number>
  since: number
}

/**
 * The access log: one line for each request the server refuses or fails
 * (4xx and 5xx, whatever sends them), at the default level, and at -vv one
 * for each request answered that is neither a publish nor a stream, which
 * log their own lines (publish.ts, streams.ts). A refusal line says who
 * (peer, and the user name it gave), what (method and target, the query
 * kept: it holds filters and positions, never credentials), the status and
 * the reason the client was given.
 *
 * Refusal lines come from a token bucket: a client that floods the server
 * with bad requests cannot fill the disk. What the bucket holds back is
 * counted, by status and client address, and said in one summary line once
 * `summaryMs` is over.
 */
export class AccessLog {
  private tokens: number
  private at: number
  private held: Held | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly logger: Logger,
    readonly limits: AccessLogLimits = ACCESS_LOG_LIMITS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = limits.burst
    this.at = now()
  }

  /**
   * A refusal sent on a request's response (http-error.ts calls this for
   * every error it sends): logged if it is one (4xx, 5xx).
   */
  readonly onRefusal = (res: ServerResponse, status: number, reason: string): void => {
    if (status < 400) return
    const req = res.req
    this.refused(req.socket, status, reason, req.method ?? '-', targetOf(req.url), userOf(req))
  }

  /** A connection refused before it made a request we could read (admission, a request Node's parser refused). */
  refusedConnection(socket: Socket, status: number, reason: string): void {
    this.refused(socket, status, reason, '-', '-', undefined)
  }

  private refused(socket: Socket, status: number, reason: string, method: string, target: string, user: string | undefined): void {
    if (!this.take()) {
      this.hold(socket, status)
      return
    }

    const peer = peerOf(socket)
    const quoted = printable(target)
    const said = printable(reason.replace(/[\r\n]+/g, ' '), 1024)
    const who = user === undefined ? '-' : printable(user, 64)
    const detail = `${peer} ${who} "${method} ${quoted}" ${status} ${said}`
    const fields: LogFields = {peer, user, method, path: quoted, status, reason: said}
    if (status >= 500 && !REFUSING_5XX.has(status)) this.logger.warn('failed', detail, fields)
    else this.logger.log(LogLevel.Always, 'refused', detail, fields)
  }

  /**
   * At -vv, the line of a request answered here rather than by a publish or
   * a stream: once its answer is sent, unless it was a refusal (logged already).
   */
  answered(req: IncomingMessage, res: ServerResponse, kind: string): void {
    if (this.logger.level < LogLevel.Documents) return
    const start = this.now()
    res.once('finish', () => {
      if (res.statusCode >= 400) return
      const peer = peerOf(req.socket)
      const user = userOf(req)
      const target = printable(targetOf(req.url))
      const length = res.getHeader('content-length')
      const bytes = length === undefined ? undefined : Number(length)
      const ms = Math.round(this.now() - start)
      this.logger.log(
        LogLevel.Documents,
        'request',
        `${peer} ${user === undefined ? '-' : printable(user, 64)} "${req.method} ${target}" ${res.statusCode} ${bytes ?? '-'} ${ms}ms ${kind}`,
        {peer, user, method: req.method, path: target, status: res.statusCode, bytes, ms, kind},
      )
    })
  }

  /** A token from the bucket, if it has one. */
  private take(): boolean {
    const now = this.now()
    const {burst, linesPerSecond} = this.limits
    this.tokens = Math.min(burst, this.tokens + ((now - this.at) / 1000) * linesPerSecond)
    this.at = now
    if (this.tokens < 1) return false
    this.tokens--
    return true
  }

  private hold(socket: Socket, status: number): void {
    if (!this.held) {
      this.held = {count: 0, byStatus: new Map(), byAddress: new Map(), since: this.now()}
      this.timer = setTimeout(() => this.flush(), this.limits.summaryMs)
      this.timer.unref()
    }

    const held = this.held
    held.count++
    held.byStatus.set(status, (held.byStatus.get(status) ?? 0) + 1)
    const address = addressOf(socket)
    const key = held.byAddress.has(address) || held.byAddress.size < MAX_ADDRESSES ? address : 'others'
    held.byAddress.set(key, (held.byAddress.get(key) ?? 0) + 1)
  }

  /** Says what was held back, if anything was: how many, by status, and from which clients (the most first). */
  flush(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    const held = this.held
    if (!held) return
    this.held = undefined
    const seconds = Math.max(1, Math.round((this.now() - held.since) / 1000))
    const byStatus = [...held.byStatus].sort(([a], [b]) => a - b)
    const clients = [...held.byAddress].sort(([, a], [, b]) => b - a)
    const top = clients.slice(0, 3).map(([address, count]) => `${address} ${count}`)
    const more = clients.length > 3 ? ` and ${clients.length - 3} more` : ''
    const {linesPerSecond, burst} = this.limits
    this.logger.warn(
      'refused',
      `${held.count} more refused request${held.count === 1 ? '' : 's'} not logged in ${seconds} s ` +
        `(at most ${linesPerSecond} lines a second, bursts of ${burst}): ${byStatus.map(([status, count]) => `${status} x${count}`).join(', ')}; ` +
        `from ${top.join(', ')}${more}`,
      {
        held: held.count,
        seconds,
        byStatus: Object.fromEntries(byStatus.map(([status, count]) => [String(status), count])),
        byAddress: Object.fromEntries(clients.slice(0, 10)),
        addresses: clients.length,
      },
    )
  }

  /** At shutdown: the summary of what is held back now, rather than never. */
  close(): void {
    this.flush()
  }
}
