import type {MessageFilter} from '../../protocol/filter.js'
import {HttpError} from '../http/http-error.js'
import {secretMatches, type Credentials} from './basic-auth.js'
import type {LoginGuard} from './login-guard.js'

/** Who made a request: the user name it gave, which becomes the sender of what it publishes; undefined for none. */
export interface Principal {
  user: string | undefined
}

/** A request without credentials (or a preflight, which carries none). */
export const ANYONE: Principal = {user: undefined}

export const CHALLENGE = {'WWW-Authenticate': 'Basic realm="msgbus"'}

/**
 * Who may do what. One implementation per way a server is run: open
 * (anyone, under any name), `--secret` (anyone who has the shared password)
 * and `--acl` (acl.ts: users with passwords of their own, per channel). The
 * gate asks each the same three questions, so there is one path through
 * authentication whichever is in force.
 */
export interface Access {
  /** Who the request is; throws the 401 (or, for throttled logins, 429 or 503) that refuses it. */
  authenticate(credentials: Credentials | undefined, client: string): Principal | Promise<Principal>
  /** Throws the 401 or 403 that refuses the principal a publish to the channel. */
  checkPublish(principal: Principal, channel: string): void
  /**
   * Throws the 401 or 403 that refuses the principal a subscription to the
   * channel; else the filter that keeps it to what it may see, checked per
   * message (undefined: everything).
   */
  subscriptionFilter(principal: Principal, channel: string): MessageFilter | undefined
}

/** No `--secret`, no `--acl`: anyone may do anything, under the name they give (any password). */
export class OpenAccess implements Access {
  authenticate(credentials: Credentials | undefined): Principal {
    return {user: credentials?.user || undefined}
  }

  checkPublish(): void {}

  subscriptionFilter(): undefined {
    return undefined
  }
}

/**
 * `--secret`: one password for everyone, any user name. Compared in
 * constant time; a client throttled for failures is refused before its
 * password is compared (429), like an ACL login.
 */
export class SecretAccess implements Access {
  constructor(
    private readonly secret: string,
    private readonly guard: LoginGuard,
  ) {}

  authenticate(credentials: Credentials | undefined, client: string): Principal {
    if (!credentials) throw new HttpError(401, 'authentication required', CHALLENGE)
    this.guard.admit(client)
    if (secretMatches(this.secret, credentials.password)) return {user: credentials.user || undefined}
    this.guard.failed(client)
    throw new HttpError(401, 'authentication required', CHALLENGE)
  }

  checkPublish(): void {}

  subscriptionFilter(): undefined {
    return undefined
  }
}
