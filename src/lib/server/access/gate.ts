import type {IncomingMessage, ServerResponse} from 'node:http'
import type {MessageFilter} from '../../protocol/filter.js'
import {HttpError} from '../http/http-error.js'
import {addressOf} from '../http/peer.js'
import {ANYONE, type Access, type Principal} from './access.js'
import {parseBasicAuth} from './basic-auth.js'
import type {CorsPolicy} from './cors.js'
import {clientOf} from './login-guard.js'
import {foreignPublisher} from './publish-origin.js'
import type {RateLimiter} from './rate-limit.js'

/** A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method. Browsers send no credentials on one. */
export function isPreflight(req: IncomingMessage): boolean {
  return req.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined
}

/**
 * Every check of who may do what, in one place, for every request: foreign
 * pages (publish-origin.ts), authentication and permissions (one Access,
 * whichever of open, `--secret` or `--acl` is in force), the publish rate
 * per client (`--rate-limit`), and the CORS headers (`--cors`).
 */
export class Gate {
  constructor(
    private readonly access: Access,
    private readonly cors: CorsPolicy | undefined,
    private readonly rateLimiter: RateLimiter | undefined,
  ) {}

  /**
   * Who the request is, or the answer that refuses it. A publish from a
   * foreign page is refused first, before any password is compared, so a
   * forged one costs no hashing and no failed login. Preflights carry no
   * credentials and are let through anonymous. Synchronous unless a
   * password must be hashed (`--acl`), so that a request is routed in the
   * same turn as it was parsed.
   */
  admit(req: IncomingMessage, publishing: boolean): Principal | Promise<Principal> {
    if (publishing) {
      const refusal = foreignPublisher(req, this.cors)
      if (refusal !== undefined) throw new HttpError(403, refusal)
    }

    const credentials = parseBasicAuth(req.headers.authorization)
    if (isPreflight(req)) return ANYONE
    return this.access.authenticate(credentials, clientOf(req.socket))
  }

  /** Throws unless the principal may publish to the channel now: its permission, then its client's rate. */
  checkPublish(req: IncomingMessage, principal: Principal, channel: string): void {
    this.access.checkPublish(principal, channel)
    const wait = this.rateLimiter?.take(addressOf(req.socket)) ?? 0
    if (wait > 0) {
      throw new HttpError(429, `more than ${this.rateLimiter!.rate} publishes a second from ${addressOf(req.socket)}`, {
        'Retry-After': String(Math.ceil(wait)),
      })
    }
  }

  /** Throws unless the principal may subscribe to the channel; the filter that keeps it to what it may see. */
  subscriptionFilter(principal: Principal, channel: string): MessageFilter | undefined {
    return this.access.subscriptionFilter(principal, channel)
  }

  /** The CORS headers of an answer on a bus URL (none without `--cors`). */
  corsHeaders(req: IncomingMessage): Record<string, string> {
    return this.cors?.responseHeaders(req) ?? {}
  }

  /** Answers the request if it is a CORS preflight the server takes (`--cors`); false if it is not one. */
  preflight(req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.cors || !isPreflight(req)) return false
    this.cors.preflight(req, res)
    return true
  }

  close(): void {
    this.rateLimiter?.close()
  }
}
