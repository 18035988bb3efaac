/**
 * Password hashes for the ACL (`serve --acl`): scrypt in a PHC-like form,
 * `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt base64>$<hash base64>`, and bcrypt
 * (`$2a$`, `$2b$`, `$2y$`, as `htpasswd -B` makes them).
 *
 * Nothing here hashes on the event loop: scrypt runs on libuv's thread pool
 * (node:crypto's async scrypt), bcrypt in a worker thread (bcryptjs's own
 * async API would hold the event loop for up to 100 ms at a time). Results
 * are compared in constant time, and successful verifications are cached
 * (PasswordVerifier), so a publisher that sends the same credentials a
 * thousand times a second pays for one hash.
 */
import {createHmac, randomBytes, scrypt, timingSafeEqual, type ScryptOptions} from 'node:crypto'
import {createRequire} from 'node:module'
import {Worker} from 'node:worker_threads'
import {codedError} from '../../util/errors.js'
import {HashQueue} from './hash-queue.js'

export interface ScryptHash {
  scheme: 'scrypt'
  /** The hash as written in the ACL. */
  text: string
  ln: number
  r: number
  p: number
  salt: Buffer
  hash: Buffer
}

export interface BcryptHash {
  scheme: 'bcrypt'
  text: string
  cost: number
}

export type PasswordHash = ScryptHash | BcryptHash

/** Why a hash field cannot be used; the message says what is wrong, without repeating the field. */
export class HashFormatError extends codedError('ERR_MSGBUS_HASH_INVALID') {}

/** What `--hash-password` makes: N = 2^15, r = 8 (32 MiB, some 50-100 ms a hash). */
export const SCRYPT_DEFAULTS = {ln: 15, r: 8, p: 1}

const SCRYPT_LIMITS = {ln: [1, 20], r: [1, 32], p: [1, 16]} as const
/** Most memory one scrypt verification may take (N = 2^20 with r = 8 is 1 GiB). */
const SCRYPT_MAX_MEMORY = 1024 * 1024 * 1024
const BCRYPT_MAX_COST = 17
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/

function scryptMemory(ln: number, r: number, p: number): number {
  // What OpenSSL checks against maxmem: the blocks (p * 128 * r) and V (128 * r * (N + 2)).
  return 128 * r * p + 128 * r * (2 ** ln + 2)
}

function scryptOptions(hash: {ln: number; r: number; p: number}): ScryptOptions {
  return {N: 2 ** hash.ln, r: hash.r, p: hash.p, maxmem: scryptMemory(hash.ln, hash.r, hash.p) + 1024 * 1024}
}

function decodeBase64(text: string, what: string): Buffer {
  if (!BASE64.test(text)) throw new HashFormatError(`scrypt ${what} is not base64`)
  return Buffer.from(text, 'base64')
}

function parseScrypt(text: string): ScryptHash {
  const fields = text.split('$')
  // ['', 'scrypt', 'ln=15,r=8,p=1', salt, hash]
  if (fields.length !== 5) throw new HashFormatError('a scrypt hash is $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>')
  const params: Record<string, number> = {}
  for (const pair of fields[2].split(',')) {
    const match = /^(ln|r|p)=(\d{1,4})$/.exec(pair)
    if (!match || match[1] in params) throw new HashFormatError(`scrypt parameters must be ln=<log2 N>,r=<r>,p=<p>, not "${fields[2]}"`)
    params[match[1]] = Number(match[2])
  }

  for (const name of ['ln', 'r', 'p'] as const) {
    if (params[name] === undefined) throw new HashFormatError(`scrypt parameter ${name} is missing`)
    const [min, max] = SCRYPT_LIMITS[name]
    if (params[name] < min || params[name] > max) throw new HashFormatError(`scrypt parameter ${name}=${params[name]} is out of range (${min} to ${max})`)
  }

  const {ln, r, p} = params
  if (scryptMemory(ln, r, p) > SCRYPT_MAX_MEMORY) throw new HashFormatError(`scrypt parameters ln=${ln},r=${r} need more than 1 GiB a verification`)
  const salt = decodeBase64(fields[3], 'salt')
  const hash = decodeBase64(fields[4], 'hash')
  if (salt.length < 8) throw new HashFormatError('scrypt salt is shorter than 8 bytes')
  if (hash.length < 16 || hash.length > 64) throw new HashFormatError('scrypt hash must be 16 to 64 bytes')
  return {scheme: 'scrypt', text, ln, r, p, salt, hash}
}

/** Reads a hash field of the ACL; throws HashFormatError saying what is wrong. */
export function parseHash(text: string): PasswordHash {
  if (text.startsWith('$scrypt$')) return parseScrypt(text)
  if (/^\$2[aby]\$/.test(text)) {
    const match = BCRYPT.exec(text)
    if (!match) throw new HashFormatError('a bcrypt hash is $2b$<cost>$ and 53 characters of salt and hash')
    const cost = Number(match[1])
    if (cost < 4 || cost > BCRYPT_MAX_COST) throw new HashFormatError(`bcrypt cost ${cost} is out of range (4 to ${BCRYPT_MAX_COST})`)
    return {scheme: 'bcrypt', text, cost}
  }

  const scheme = /^\$([^$]*)\$/.exec(text)?.[1]
  if (scheme !== undefined) throw new HashFormatError(`unknown hash scheme "${scheme}" (use scrypt or bcrypt)`)
  // Not echoed: it may well be a password in clear.
  throw new HashFormatError('the password field is not a hash ($scrypt$... or $2b$...); make one with msgbus serve --hash-password')
}

function scryptAsync(password: string, salt: Buffer, length: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, length, options, (error, key) => (error ? reject(error) : resolve(key))))
}

/** A new scrypt hash of the password, in the form the ACL reads. */
export async function makeScryptHash(password: string, params = SCRYPT_DEFAULTS): Promise<string> {
  const salt = randomBytes(16)
  const hash = await scryptAsync(password, salt, 32, scryptOptions(params))
  const b64 = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '')
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`
}

/**
 * bcrypt, in one worker thread started on first use and unreferenced while
 * idle (so it never keeps the process alive). Hashes there are synchronous:
 * the thread does nothing else.
 */
class BcryptWorker {
  private worker: Worker | undefined
  private next = 0
  private readonly pending = new Map<number, {resolve: (hash: string) => void; reject: (error: Error) => void}>()

  private start(): Worker {
    // Resolved here, so the worker finds bcryptjs wherever msgbus is installed (and from the CLI bundle too).
    const module = createRequire(import.meta.url).resolve('bcryptjs')
    const worker = new Worker(
      `const {parentPort, workerData} = require('node:worker_threads')
       const bcrypt = require(workerData)
       parentPort.on('message', ({id, password, salt}) => {
         try { parentPort.postMessage({id, hash: bcrypt.hashSync(password, salt)}) }
         catch (error) { parentPort.postMessage({id, error: String(error && error.message || error)}) }
       })`,
      {eval: true, workerData: module},
    )
    worker.on('message', ({id, hash, error}: {id: number; hash?: string; error?: string}) => {
      const job = this.pending.get(id)
      if (!job) return
      this.pending.delete(id)
      if (this.pending.size === 0) worker.unref()
      if (error !== undefined) job.reject(new Error(`bcrypt: ${error}`))
      else job.resolve(hash!)
    })
    const fail = (error: Error) => {
      this.worker = undefined
      for (const job of this.pending.values()) job.reject(error)
      this.pending.clear()
    }

    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`bcrypt worker exited with ${code}`)))
    return worker
  }

  /** bcrypt of the password with the salt (and cost) of `salt`, a hash or its first 29 characters. */
  hash(password: string, salt: string): Promise<string> {
    this.worker ??= this.start()
    this.worker.ref()
    const id = this.next++
    return new Promise((resolve, reject) => {
      this.pending.set(id, {resolve, reject})
      this.worker!.postMessage({id, password, salt: salt.slice(0, 29)})
    })
  }
}

const bcryptWorker = new BcryptWorker()

/**
 * Every verification waits its turn here, fairly per client. At most two
 * hashes at once in the whole process: libuv's pool (4 threads) must keep room for
 * files and DNS.
 */
const hashQueue = new HashQueue(2)

/** What a hash costs to verify, as a name: hashes of one kind take as long as each other. */
export function hashKind(hash: PasswordHash): string {
  return hash.scheme === 'scrypt' ? `scrypt ln=${hash.ln},r=${hash.r},p=${hash.p},keylen=${hash.hash.length}` : `bcrypt cost=${hash.cost}`
}

/**
 * Hashes the password as `hash` says and compares in constant time. Always
 * does the full work, in `client`'s turn of the hash queue; rejects with
 * HashQueueFull when the queue has no room for it.
 */
export function verifyHash(hash: PasswordHash, password: string, client = 'local'): Promise<boolean> {
  return hashQueue.run(client, async () => {
    if (hash.scheme === 'scrypt') {
      const derived = await scryptAsync(password, hash.salt, hash.hash.length, scryptOptions(hash))
      return timingSafeEqual(derived, hash.hash)
    }

    // The versions ($2a$, $2b$, $2y$) differ only in bugs of old C code; compare salt and digest.
    const computed = Buffer.from((await bcryptWorker.hash(password, hash.text)).slice(7))
    const expected = Buffer.from(hash.text.slice(7))
    return computed.length === expected.length && timingSafeEqual(computed, expected)
  })
}

export interface VerifierCounters {
  /** Verifications answered from the cache. */
  hits: number
  /** Hashes computed (including those for unknown users). */
  hashes: number
  /** Hashes computed, by kind (hashKind): unknown users' decoys show here as the kind they were verified as. */
  byKind: Record<string, number>
}

/** Clients remembered per cached login (see `cachedFrom`). */
const CLIENTS_PER_LOGIN = 4

interface CachedLogin {
  /** The hash the login was verified against. */
  hash: string
  /** The clients it was last used from, most recent first. */
  clients: string[]
}

function remember(login: CachedLogin, client: string): void {
  if (login.clients[0] === client) return
  const at = login.clients.indexOf(client)
  if (at >= 0) login.clients.splice(at, 1)
  else if (login.clients.length >= CLIENTS_PER_LOGIN) login.clients.pop()
  login.clients.unshift(client)
}

/**
 * Verifies passwords, remembering successes: a bounded map (least recently
 * used out first) from an HMAC-SHA-256 of `user:password`, under a key made
 * per process, to the hash it was verified against, so that a changed hash
 * (an ACL reload) is verified anew, and to the clients it was used from.
 * Failures are not cached. Concurrent requests with the same credentials
 * share one hash.
 */
export class PasswordVerifier {
  private readonly key = randomBytes(32)
  private readonly cache = new Map<string, CachedLogin>()
  private readonly inFlight = new Map<string, Promise<boolean>>()
  readonly counters: VerifierCounters = {hits: 0, hashes: 0, byKind: {}}

  constructor(readonly maxEntries = 1000) {}

  private cacheKey(user: string, password: string): string {
    return createHmac('sha256', this.key).update(`${user}:${password}`).digest('base64')
  }

  private hashed(hash: PasswordHash): void {
    this.counters.hashes++
    const kind = hashKind(hash)
    this.counters.byKind[kind] = (this.counters.byKind[kind] ?? 0) + 1
  }

  /** Checks the password against `hash`, from the cache or in `client`'s turn of the hash queue (which may reject: HashQueueFull). */
  async verify(user: string, password: string, hash: PasswordHash, client = 'local'): Promise<boolean> {
    const key = this.cacheKey(user, password)
    const login = this.cache.get(key)
    if (login?.hash === hash.text) {
      // Most recently used goes last.
      this.cache.delete(key)
      this.cache.set(key, login)
      remember(login, client)
      this.counters.hits++
      return true
    }

    const flightKey = `${key}${hash.text}`
    let flight = this.inFlight.get(flightKey)
    if (!flight) {
      flight = verifyHash(hash, password, client).finally(() => this.inFlight.delete(flightKey))
      this.inFlight.set(flightKey, flight)
      // Counted once it has a place in the queue: a refusal hashes nothing.
      flight.then(() => this.hashed(hash), () => {})
    }

    const ok = await flight
    if (ok) {
      const cached = this.cache.get(key)
      if (cached?.hash === hash.text) {
        remember(cached, client)
      } else {
        this.cache.delete(key)
        this.cache.set(key, {hash: hash.text, clients: [client]})
        if (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value!)
      }
    }

    return ok
  }

  /**
   * Whether these credentials were verified against `hash` and used from
   * `client` lately: the cache alone answers, nothing is hashed. (For logins
   * while their user is throttled; see AccessControl.authenticate.)
   */
  cachedFrom(user: string, password: string, hash: PasswordHash, client: string): boolean {
    const login = this.cache.get(this.cacheKey(user, password))
    if (login?.hash !== hash.text || !login.clients.includes(client)) return false
    this.counters.hits++
    return true
  }

  /** Spends the time a verification against `hash` takes, for a user that does not exist; always false. */
  async decoy(password: string, hash: PasswordHash, client = 'local'): Promise<false> {
    await verifyHash(hash, password, client)
    this.hashed(hash)
    return false
  }
}
