/**
 * Access control (`serve --acl FILE`): users with password hashes and, per
 * user, the channels they may publish to and subscribe to.
 *
 *   # user     password-hash                         publish          subscribe
 *   alice      $scrypt$ln=15,r=8,p=1$<salt>$<hash>   chat,alerts/*    *
 *   bob        $2b$10$....                            -                chat,news/*
 *   *          -                                      -                public/*
 *
 * One user a line, fields separated by spaces or tabs; a field that starts
 * with `#` starts a comment, to the end of the line. The lists are the
 * project's pattern lists (pattern.ts), matched case-sensitively against the
 * channel name; `-` is nothing. The user `*` is anyone without credentials;
 * its hash is `-`.
 */
import {readFile} from 'node:fs/promises'
import type {Message} from '../../bus/message.js'
import {compilePatternList, PatternListError, type Matcher} from '../../protocol/pattern.js'
import type {MessageFilter} from '../../protocol/filter.js'
import {ANYONE, CHALLENGE, OpenAccess, SecretAccess, type Access, type Principal} from './access.js'
import {MAX_USER_BYTES, type Credentials} from './basic-auth.js'
import {CONTROL} from '../../protocol/channel.js'
import {DecoyHashes} from './decoy-hashes.js'
import {HashQueueFull} from './hash-queue.js'
import {HttpError} from '../http/http-error.js'
import {MsgbusError, reasonOf} from '../../util/errors.js'
import type {LoginGuard} from './login-guard.js'
import {HashFormatError, parseHash, PasswordVerifier, type PasswordHash} from './password-hash.js'

export const ANONYMOUS = '*'
const NOTHING: Matcher = () => false

export interface AclEntry {
  /** The user name; `*` for anonymous access. */
  user: string
  /** undefined for `*`. */
  hash: PasswordHash | undefined
  /** The lists as written (`-` for none). */
  publishList: string
  subscribeList: string
  mayPublish: Matcher
  maySubscribe: Matcher
  /** Some subscribe permission at all: enough to subscribe to every channel (and get the permitted ones). */
  subscribesAny: boolean
  /** Line number in the file. */
  line: number
}

/**
 * A problem in the file, `file:line: what is wrong` (ERR_MSGBUS_ACL_INVALID,
 * with the PatternListError or HashFormatError behind it as `cause`), or a
 * file that cannot be read (ERR_MSGBUS_ACL_UNREADABLE, Node's error as `cause`).
 */
export class AclError extends MsgbusError {
  declare readonly code: 'ERR_MSGBUS_ACL_INVALID' | 'ERR_MSGBUS_ACL_UNREADABLE'

  constructor(message: string, options: ErrorOptions & {code?: AclError['code']} = {}) {
    super(options.code ?? 'ERR_MSGBUS_ACL_INVALID', message, options)
  }
}

function compileList(list: string, what: string, fail: (what: string, cause?: Error) => never): Matcher {
  if (list === '-') return NOTHING
  const patterns = list.split(',')
  if (patterns.some((pattern) => pattern === '' || pattern === '!')) fail(`empty pattern in the ${what} list "${list}"`)
  if (patterns.every((pattern) => pattern.startsWith('!'))) {
    fail(`the ${what} list "${list}" has only negated patterns, so it allows nothing (write "*,${list}" for all but those, or "-" for nothing)`)
  }

  try {
    return compilePatternList(list)
  } catch (error) {
    if (error instanceof PatternListError) fail(`the ${what} list: ${error.message}`, error)
    throw error
  }
}

/** A parsed ACL file. */
export class Acl {
  private constructor(
    readonly file: string,
    private readonly entries: Map<string, AclEntry>,
    /** What unknown users are verified against, so that they take as long as real ones. */
    private readonly decoys: DecoyHashes,
  ) {}

  /** Parses the text of an ACL; throws AclError naming `file` and the line. */
  static parse(text: string, file: string): Acl {
    const entries = new Map<string, AclEntry>()
    const lines = text.split('\n')
    for (let index = 0; index < lines.length; index++) {
      const line = index + 1
      const fail = (what: string, cause?: Error): never => {
        throw new AclError(`${file}:${line}: ${what}`, cause && {cause})
      }

      const fields: string[] = []
      for (const field of lines[index].replace(/\r$/, '').split(/[ \t]+/)) {
        if (field.startsWith('#')) break
        if (field !== '') fields.push(field)
      }

      if (fields.length === 0) continue
      if (fields.length !== 4) fail(`expected 4 fields (user, password hash, publish, subscribe), found ${fields.length}`)
      const [user, hashText, publishList, subscribeList] = fields
      if (fields.some((field) => CONTROL.test(field))) fail('control character in the line')
      if (user.includes(':')) fail(`user name "${user}" contains ":", which Basic auth cannot carry`)
      if (Buffer.byteLength(user) > MAX_USER_BYTES) fail(`a user name has at most ${MAX_USER_BYTES} bytes (it could never log in), not ${Buffer.byteLength(user)}`)
      const earlier = entries.get(user)
      if (earlier) fail(`${user === ANONYMOUS ? 'the anonymous entry "*"' : `user "${user}"`} is already on line ${earlier.line}`)
      let hash: PasswordHash | undefined
      if (user === ANONYMOUS) {
        if (hashText !== '-') fail('the anonymous entry "*" takes no password: its hash field must be "-"')
      } else if (hashText === '-') {
        fail(`user "${user}" has no password hash (make one with msgbus serve --hash-password)`)
      }

      try {
        if (hashText !== '-') hash = parseHash(hashText)
      } catch (error) {
        if (error instanceof HashFormatError) fail(error.message, error)
        throw error
      }

      const mayPublish = compileList(publishList, 'publish', fail)
      const maySubscribe = compileList(subscribeList, 'subscribe', fail)

      entries.set(user, {user, hash, publishList, subscribeList, mayPublish, maySubscribe, subscribesAny: subscribeList !== '-', line})
    }

    if (entries.size === 0) throw new AclError(`${file}: no users (a line is: user password-hash publish subscribe)`)
    const hashes = [...entries.values()].flatMap(({hash}) => (hash ? [hash] : []))
    return new Acl(file, entries, new DecoyHashes(hashes, text))
  }

  /** Reads and parses an ACL file; throws AclError (`file:line: ...`, or `cannot read file: ENOENT`). */
  static async load(file: string): Promise<Acl> {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      throw new AclError(`cannot read ACL ${file}: ${reasonOf(error)}`, {code: 'ERR_MSGBUS_ACL_UNREADABLE', cause: error})
    }

    return Acl.parse(text, file)
  }

  entry(user: string): AclEntry | undefined {
    return this.entries.get(user)
  }

  /** The hash to verify a user name that is not in the ACL against (DecoyHashes); undefined without users. */
  decoyFor(user: string): PasswordHash | undefined {
    return this.decoys.for(user)
  }

  get anonymous(): AclEntry | undefined {
    return this.entries.get(ANONYMOUS)
  }

  /** Named users, not counting the anonymous entry. */
  get userCount(): number {
    return this.entries.size - (this.anonymous ? 1 : 0)
  }

  /** `2 users`, `2 users and anonymous access`, for the log. */
  describe(): string {
    const users = `${this.userCount} user${this.userCount === 1 ? '' : 's'}`
    return this.anonymous ? `${users} and anonymous access` : users
  }
}

function who(principal: Principal): string {
  return principal.user === undefined ? 'anonymous users' : principal.user
}

/**
 * The ACL in force, and the checks the request handler makes against it.
 * `reload()` swaps in a new ACL; open subscriptions follow it from their next
 * message on.
 */
export class AccessControl implements Access {
  readonly verifier = new PasswordVerifier()

  constructor(
    private acl: Acl,
    /** Failed-login limits, and the answers when the hash queue is full. */
    private readonly guard: LoginGuard,
  ) {}

  static async load(file: string, guard: LoginGuard): Promise<AccessControl> {
    return new AccessControl(await Acl.load(file), guard)
  }

  get current(): Acl {
    return this.acl
  }

  /** Re-reads the file; on any error the ACL in force stays, and this rejects with the reason. */
  async reload(): Promise<Acl> {
    this.acl = await Acl.load(this.acl.file)
    return this.acl
  }

  /**
   * Who the request from `client` (clientOf) is: credentials must name a
   * user and carry the password, else 401 (unknown users are verified
   * against a decoy hash, so they take as long as a wrong password); no
   * credentials are anonymous, 401 unless the ACL has a `*` line. A
   * throttled client or user, or a full hash queue: 429 or 503, unchecked.
   *
   * While a user name is throttled (too many failures for it from all
   * clients together), its credentials are not hashed: that would let the
   * guesses through. Refusing them all would let anyone lock a user out,
   * the publisher that has been logged in all along included; so a login
   * still succeeds from the cache alone when it was verified before and
   * lately used from this very client, and this client has had no failure
   * lately. Both conditions are needed. A look in the cache costs an HMAC,
   * not a hash: were it open to any client without failures, an attacker
   * with many addresses could try one guess from each before it had a
   * failure, far more than the user's budget. And an address the real user
   * logs in from may be shared with an attacker (NAT): it is closed as soon
   * as a guess from it fails. These refusals count against the client, so
   * it cannot go on trying them; a 429 says nothing about the password, and
   * unknown names are throttled alike, so a 429 does not tell users apart.
   */
  async authenticate(credentials: Credentials | undefined, client: string): Promise<Principal> {
    const acl = this.acl
    if (!credentials) {
      if (!acl.anonymous) throw new HttpError(401, 'authentication required', CHALLENGE)
      return ANYONE
    }

    const guard = this.guard
    guard.admit(client)
    const {user, password} = credentials
    const entry = user === ANONYMOUS ? undefined : acl.entry(user)
    const hash = entry?.hash ?? acl.decoyFor(user)
    const account = {name: user, known: entry?.hash !== undefined}
    const wait = guard.userWait(account)
    if (wait > 0) {
      // Looked up for unknown names too (a decoy is never cached), so both take the time of an HMAC.
      const cached = hash !== undefined && !guard.failedRecently(client) && this.verifier.cachedFrom(user, password, hash, client)
      if (cached && account.known) return {user}
      throw guard.refuseForUser(client, account, wait)
    }

    let ok = false
    try {
      if (entry?.hash) ok = await this.verifier.verify(user, password, entry.hash, client)
      else if (hash) ok = await this.verifier.decoy(password, hash, client)
    } catch (error) {
      if (error instanceof HashQueueFull) throw guard.queueFull(client, error)
      throw error
    }

    if (!ok) {
      guard.failed(client, account)
      throw new HttpError(401, 'wrong user name or password', CHALLENGE)
    }

    return {user}
  }

  private entryOf(principal: Principal): AclEntry | undefined {
    return principal.user === undefined ? this.acl.anonymous : this.acl.entry(principal.user)
  }

  /** A refusal: 403 for a user, 401 for anonymous requests (credentials may get further). */
  private refuse(principal: Principal, action: string, channel: string): HttpError {
    const reason = `${who(principal)} may not ${action} ${channel === '' ? 'any channel' : JSON.stringify(channel)}`
    return principal.user === undefined ? new HttpError(401, `${reason}: authentication required`, CHALLENGE) : new HttpError(403, reason)
  }

  /** Throws unless the principal may publish to the channel. The empty channel is left to publish() to refuse (400). */
  checkPublish(principal: Principal, channel: string): void {
    if (channel === '') return
    if (!this.entryOf(principal)?.mayPublish(channel)) throw this.refuse(principal, 'publish to', channel)
  }

  /**
   * Throws unless the principal may subscribe to the channel (to every
   * channel: has any subscribe permission); else returns the filter that
   * keeps the subscription to the channels the ACL in force permits, checked
   * per message, so a reload applies to open subscriptions too.
   */
  subscriptionFilter(asking: Principal, channel: string): MessageFilter {
    const entry = this.entryOf(asking)
    if (!entry || (channel === '' ? !entry.subscribesAny : !entry.maySubscribe(channel))) throw this.refuse(asking, 'subscribe to', channel)

    let acl = this.acl
    let permits = entry.maySubscribe
    return (message: Message) => {
      if (acl !== this.acl) {
        acl = this.acl
        permits = this.entryOf(asking)?.maySubscribe ?? NOTHING
      }

      return permits(message.channel)
    }
  }
}

/** The server's Access from its options: open, `--secret` or `--acl`; rejects when the ACL file is unusable, or with both. */
export async function openAccess(options: {acl?: string; secret?: string}, guard: LoginGuard): Promise<Access> {
  if (options.acl === undefined) return options.secret === undefined ? new OpenAccess() : new SecretAccess(options.secret, guard)
  if (options.secret !== undefined) throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', 'acl and secret cannot be used together: give the ACL users instead of a shared secret')
  return AccessControl.load(options.acl, guard)
}
