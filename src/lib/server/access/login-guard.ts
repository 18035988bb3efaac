import {createHash} from 'node:crypto'
import type {Socket} from 'node:net'
import {addressOf} from '../http/peer.js'
import {FailureBudget, type ThrottleStart} from './failure-budget.js'
import type {HashQueueFull} from './hash-queue.js'
import {HttpError} from '../http/http-error.js'
import {LogBudget} from '../ops/log-budget.js'
import type {Logger} from '../ops/log.js'

/** A user name's budget is this many times a client's: it adds up failures from every client. */
export const USER_BUDGET_FACTOR = 10
/** Most clients, and most user names, whose recent failures are remembered. */
const MAX_KEYS = 65_536
const SWEEP_MS = 10_000
/** User names longer than this are cut in log lines and answers. */
const NAME_SHOWN = 64

/** The 64 high bits of an IPv6 address, as `2001:db8:0:1::/64`. */
function network64(address: string): string {
  const bare = address.replace(/%.*$/, '')
  const [head, tail] = bare.split('::')
  const groups = (text: string | undefined) => (text ? text.split(':') : [])
  const front = groups(head)
  const back = groups(tail)
  // An IPv4 tail (::ffff:1.2.3.4 forms) stands for two groups.
  const width = front.length + back.length + (back.at(-1)?.includes('.') ? 1 : 0)
  const all = [...front, ...Array<string>(Math.max(0, 8 - width)).fill('0'), ...back]
  return `${all.slice(0, 4).map((group) => Number.parseInt(group, 16).toString(16)).join(':')}::/64`
}

/**
 * The client as login limits count it: its IPv4 address, or its IPv6 /64
 * network, which is what one subscriber (one attacker) gets to pick its
 * addresses from.
 */
export function clientOf(socket: Socket): string {
  const address = addressOf(socket)
  return address.includes(':') && address !== '::1' ? network64(address) : address
}

function shown(user: string): string {
  return JSON.stringify(user.length > NAME_SHOWN ? `${user.slice(0, NAME_SHOWN)}…` : user)
}

function seconds(value: number): string {
  return value < 10 ? value.toFixed(1) : value.toFixed(0)
}

/** A user name as the login limits see it. */
export interface LoginUser {
  name: string
  /** In the ACL. Names that are not are kept apart, under a digest, so made-up names cannot push real users out. */
  known: boolean
}

export interface LoginCounters {
  /** Logins with wrong credentials (`--secret` or `--acl`). */
  failed: number
  /** Logins refused (429, 503) without their credentials being checked. */
  refused: number
}

/**
 * Failed logins, for `--secret` and `--acl` alike (`--max-login-failures N`):
 * each client (address) may fail N times in a burst and N times a minute,
 * each user name N × USER_BUDGET_FACTOR times from all clients together.
 * Past that, logins are refused with 429 and Retry-After without their
 * credentials being checked: checking would let the guesses through. The
 * start of each throttle, and a full hash queue, are logged, within a
 * LogBudget. N = 0 throttles nothing (the hash queue's limits still apply).
 */
export class LoginGuard {
  readonly counters: LoginCounters = {failed: 0, refused: 0}
  private readonly clients: FailureBudget | undefined
  private readonly users: FailureBudget | undefined
  private readonly strangers: FailureBudget | undefined
  /** Apart, so that lines about many clients cannot crowd out the one about a user, or the queue. */
  private readonly clientLog: LogBudget
  private readonly userLog: LogBudget
  private readonly queueLog: LogBudget
  private readonly sweeper: NodeJS.Timeout

  constructor(
    readonly perMinute: number,
    logger: Logger,
    now: () => number = () => performance.now(),
  ) {
    if (perMinute > 0) {
      this.clients = new FailureBudget(perMinute, MAX_KEYS, now)
      this.users = new FailureBudget(perMinute * USER_BUDGET_FACTOR, MAX_KEYS, now)
      this.strangers = new FailureBudget(perMinute * USER_BUDGET_FACTOR, MAX_KEYS, now)
    }

    this.clientLog = new LogBudget(logger, 'login', 10, now)
    this.userLog = new LogBudget(logger, 'login', 10, now)
    this.queueLog = new LogBudget(logger, 'login', 10, now)
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS)
    this.sweeper.unref()
  }

  private budgetOf(user: LoginUser): {budget: FailureBudget | undefined; key: string} {
    return user.known ? {budget: this.users, key: user.name} : {budget: this.strangers, key: createHash('sha256').update(user.name).digest('base64')}
  }

  private refuse(status: number, retryAfter: number, reason: string, cause?: Error): HttpError {
    this.counters.refused++
    const wait = Math.max(1, Math.ceil(retryAfter))
    return new HttpError(status, `${reason}: try again in ${wait} s`, {'Retry-After': String(wait)}, false, cause && {cause})
  }

  /** Throws 429 while `client` is throttled: call before looking at its credentials at all. */
  admit(client: string): void {
    const wait = this.clients?.wait(client) ?? 0
    if (wait > 0) throw this.refuse(429, wait, `too many failed logins from ${client}`)
  }

  /** Seconds `user` is throttled for; 0 when it is not. */
  userWait(user: LoginUser): number {
    const {budget, key} = this.budgetOf(user)
    return budget?.wait(key) ?? 0
  }

  /** Whether `client` has failed to log in lately (within the last minute at most). */
  failedRecently(client: string): boolean {
    return this.clients?.failedRecently(client) ?? false
  }

  /** A login that failed: counts against the client and, with an ACL, the user name. */
  failed(client: string, user?: LoginUser): void {
    this.counters.failed++
    this.chargeClient(client)
    if (!user) return
    const {budget, key} = this.budgetOf(user)
    const start = budget?.fail(key)
    if (start) {
      const who = `${user.known ? 'user' : 'unknown user'} ${shown(user.name)}`
      this.userLog.warn(key, `${who}: ${this.describe(start, ' from all clients')}; its logins cached from the clients it used lately still work`)
    }
  }

  /**
   * The 429 for a login whose user is throttled. It counts against the
   * client as a failure (not against the user, whose throttle it would
   * prolong): a client cannot go on trying a throttled user for free.
   */
  refuseForUser(client: string, user: LoginUser, wait: number): HttpError {
    this.chargeClient(client)
    return this.refuse(429, wait, `too many failed logins for user ${shown(user.name)}`)
  }

  /** The answer when the hash queue has no room: 429 for a client with too many logins at once, 503 for everyone. Logged. */
  queueFull(client: string, full: HashQueueFull): HttpError {
    if (full.scope === 'client') {
      this.queueLog.warn(client, `${full.message}; more at once get 429`)
      return this.refuse(429, full.retryAfter, full.message, full)
    }

    this.queueLog.warn('', `hash queue full: ${full.message}; new logins get 503 (this one from ${client})`)
    return this.refuse(503, full.retryAfter, `too many logins waiting to be checked`, full)
  }

  private chargeClient(client: string): void {
    const start = this.clients?.fail(client)
    if (start) this.clientLog.warn(client, `${client}: ${this.describe(start, '')}`)
  }

  private describe(start: ThrottleStart, where: string): string {
    return `${start.failures} failed logins in ${seconds(start.seconds)} s${where}; throttled: 429 for ${seconds(start.retryAfter)} s, then one try every ${seconds(start.every)} s until a minute passes without failure`
  }

  private sweep(): void {
    this.clients?.sweep()
    this.users?.sweep()
    this.strangers?.sweep()
    this.clientLog.flush()
    this.userLog.flush()
    this.queueLog.flush()
  }

  close(): void {
    clearInterval(this.sweeper)
  }
}
