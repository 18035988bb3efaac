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
import type {Message} from '../bus/message.js'
import {compilePatternList, PatternListError, type Matcher} from '../protocol/pattern.js'
import type {MessageFilter} from '../protocol/filter.js'
import {MAX_USER_BYTES, type Credentials} from './auth.js'
import {HttpError} from './http-error.js'
import {HashFormatError, parseHash, PasswordVerifier, type PasswordHash} from './password-hash.js'

export const ANONYMOUS = '*'
const CHALLENGE = {'WWW-Authenticate': 'Basic realm="msgbus"'}
const CONTROL = /[\u0000-\u001F\u007F]/
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

/** A problem in the file: `file:line: what is wrong`. */
export class AclError extends Error {}

function compileList(list: string, what: string, fail: (what: string) => never): Matcher {
  if (list === '-') return NOTHING
  const patterns = list.split(',')
  if (patterns.some((pattern) => pattern === '' || pattern === '!')) fail(`empty pattern in the ${what} list "${list}"`)
  if (patterns.every((pattern) => pattern.startsWith('!'))) {
    fail(`the ${what} list "${list}" has only negated patterns, so it allows nothing (write "*,${list}" for all but those, or "-" for nothing)`)
  }

  try {
    return compilePatternList(list)
  } catch (error) {
    if (error instanceof PatternListError) fail(`the ${what} list: ${error.message}`)
    throw error
  }
}

/** A parsed ACL file. */
export class Acl {
  private constructor(
    readonly file: string,
    private readonly entries: Map<string, AclEntry>,
    /** A hash with the parameters most users' have: unknown users are verified against it, so they take as long. */
    readonly decoyHash: PasswordHash | undefined,
  ) {}

  /** Parses the text of an ACL; throws AclError naming `file` and the line. */
  static parse(text: string, file: string): Acl {
    const entries = new Map<string, AclEntry>()
    const lines = text.split('\n')
    for (let index = 0; index < lines.length; index++) {
      const line = index + 1
      const fail = (what: string): never => {
        throw new AclError(`${file}:${line}: ${what}`)
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
        if (error instanceof HashFormatError) fail(error.message)
        throw error
      }

      const mayPublish = compileList(publishList, 'publish', fail)
      const maySubscribe = compileList(subscribeList, 'subscribe', fail)

      entries.set(user, {user, hash, publishList, subscribeList, mayPublish, maySubscribe, subscribesAny: subscribeList !== '-', line})
    }

    if (entries.size === 0) throw new AclError(`${file}: no users (a line is: user password-hash publish subscribe)`)
    return new Acl(file, entries, decoyOf(entries))
  }

  /** Reads and parses an ACL file; throws AclError (`file:line: ...`, or `cannot read file: ENOENT`). */
  static async load(file: string): Promise<Acl> {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      throw new AclError(`cannot read ACL ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }

    return Acl.parse(text, file)
  }

  entry(user: string): AclEntry | undefined {
    return this.entries.get(user)
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

function decoyOf(entries: Map<string, AclEntry>): PasswordHash | undefined {
  const seen = new Map<string, {hash: PasswordHash; count: number}>()
  for (const {hash} of entries.values()) {
    if (!hash) continue
    const kind = hash.scheme === 'scrypt' ? `scrypt ${hash.ln} ${hash.r} ${hash.p} ${hash.hash.length}` : `bcrypt ${hash.cost}`
    const known = seen.get(kind)
    if (known) known.count++
    else seen.set(kind, {hash, count: 1})
  }

  let best: {hash: PasswordHash; count: number} | undefined
  for (const candidate of seen.values()) if (!best || candidate.count > best.count) best = candidate
  return best?.hash
}

/** Who made a request: a user of the ACL, or anonymous (user undefined). */
export interface Principal {
  user: string | undefined
}

const ANYONE: Principal = {user: undefined}

function who(principal: Principal): string {
  return principal.user === undefined ? 'anonymous users' : principal.user
}

/**
 * The ACL in force, and the checks the request handler makes against it.
 * `reload()` swaps in a new ACL; open subscriptions follow it from their next
 * message on.
 */
export class AccessControl {
  readonly verifier = new PasswordVerifier()

  constructor(private acl: Acl) {}

  static async load(file: string): Promise<AccessControl> {
    return new AccessControl(await Acl.load(file))
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
   * Who the request is from: credentials must name a user and carry the
   * password, else 401 (unknown users are verified against a decoy hash, so
   * they take as long as a wrong password); no credentials are anonymous,
   * 401 unless the ACL has a `*` line.
   */
  async authenticate(credentials: Credentials | undefined): Promise<Principal> {
    const acl = this.acl
    if (!credentials) {
      if (!acl.anonymous) throw new HttpError(401, 'authentication required', CHALLENGE)
      return ANYONE
    }

    const entry = credentials.user === ANONYMOUS ? undefined : acl.entry(credentials.user)
    const ok = entry?.hash
      ? await this.verifier.verify(credentials.user, credentials.password, entry.hash)
      : acl.decoyHash && (await this.verifier.decoy(credentials.password, acl.decoyHash))
    if (!ok) throw new HttpError(401, 'wrong user name or password', CHALLENGE)
    return {user: credentials.user}
  }

  private entryOf(principal: Principal | undefined): AclEntry | undefined {
    return principal?.user === undefined ? this.acl.anonymous : this.acl.entry(principal.user)
  }

  /** A refusal: 403 for a user, 401 for anonymous requests (credentials may get further). */
  private refuse(principal: Principal, action: string, channel: string): HttpError {
    const reason = `${who(principal)} may not ${action} ${channel === '' ? 'any channel' : JSON.stringify(channel)}`
    return principal.user === undefined ? new HttpError(401, `${reason}: authentication required`, CHALLENGE) : new HttpError(403, reason)
  }

  /** Throws unless the principal may publish to the channel. The empty channel is left to publish() to refuse (400). */
  checkPublish(principal: Principal | undefined, channel: string): void {
    if (channel === '') return
    if (!this.entryOf(principal)?.mayPublish(channel)) throw this.refuse(principal ?? ANYONE, 'publish to', channel)
  }

  /**
   * Throws unless the principal may subscribe to the channel (to every
   * channel: has any subscribe permission); else returns the filter that
   * keeps the subscription to the channels the ACL in force permits, checked
   * per message, so a reload applies to open subscriptions too.
   */
  subscriptionFilter(principal: Principal | undefined, channel: string): MessageFilter {
    const asking = principal ?? ANYONE
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

/** The server's access control from its options: undefined without `acl`; rejects when the file is unusable, or with `secret` too. */
export async function openAccess(options: {acl?: string; secret?: string}): Promise<AccessControl | undefined> {
  if (options.acl === undefined) return undefined
  if (options.secret !== undefined) throw new Error('acl and secret cannot be used together: give the ACL users instead of a shared secret')
  return AccessControl.load(options.acl)
}
