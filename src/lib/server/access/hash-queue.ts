import {MsgbusError} from '../../util/errors.js'

/** The queue refused a hash: too many from this client (`client`) or from everyone (`all`). */
export class HashQueueFull extends MsgbusError {
  declare readonly code: 'ERR_MSGBUS_HASH_QUEUE_FULL'

  constructor(
    readonly scope: 'client' | 'all',
    /** Seconds after which a try is likely to get in. */
    readonly retryAfter: number,
    message: string,
  ) {
    super('ERR_MSGBUS_HASH_QUEUE_FULL', message)
  }
}

interface Job {
  client: string
  work: () => Promise<unknown>
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

interface Client {
  /** Jobs waiting or running. */
  outstanding: number
  waiting: Job[]
  /** When it was last served, in turns; 0: never. */
  servedAt: number
}

/**
 * Password hashes waiting for their turn, served fairly: the next hash is
 * the first waiting one of the client served longest ago, so a client with
 * a hundred guesses waiting delays another client's login by about one hash,
 * not a hundred, and a newcomer goes first. A client may have `perClient`
 * hashes waiting or running (more: HashQueueFull 'client'), and everyone
 * together `maxWaiting` waiting (more: 'all'); at most `concurrency` run at
 * once.
 */
export class HashQueue {
  private running = 0
  private waiting = 0
  private turn = 0
  /** Clients with jobs waiting or running; at most maxWaiting + concurrency of them. */
  private readonly clients = new Map<string, Client>()
  /** A running average of how long a hash takes, for Retry-After. */
  private averageMs = 100

  constructor(
    readonly concurrency = 2,
    readonly perClient = 4,
    readonly maxWaiting = 256,
  ) {}

  /** Runs `work` in `client`'s turn; rejects with HashQueueFull at once when there is no room. */
  run<T>(client: string, work: () => Promise<T>): Promise<T> {
    const known = this.clients.get(client)
    if (known && known.outstanding >= this.perClient) {
      return Promise.reject(new HashQueueFull('client', this.retryAfter(), `${this.perClient} logins from ${client} are being checked already`))
    }

    const queued = this.running >= this.concurrency
    if (queued && this.waiting >= this.maxWaiting) {
      return Promise.reject(new HashQueueFull('all', this.retryAfter(), `${this.waiting} logins are waiting to be checked already`))
    }

    const state = known ?? {outstanding: 0, waiting: [], servedAt: 0}
    if (!known) this.clients.set(client, state)
    state.outstanding++
    return new Promise<T>((resolve, reject) => {
      const job: Job = {client, work, resolve: resolve as (value: unknown) => void, reject}
      if (queued) {
        this.waiting++
        state.waiting.push(job)
      } else {
        this.start(state, job)
      }
    })
  }

  /** Hashes waiting for their turn (not counting those running). */
  get length(): number {
    return this.waiting
  }

  private retryAfter(): number {
    return Math.max(1, Math.ceil(((this.waiting + this.running) * this.averageMs) / this.concurrency / 1000))
  }

  private start(state: Client, job: Job): void {
    this.running++
    state.servedAt = ++this.turn
    const started = performance.now()
    const done = () => {
      this.running--
      this.averageMs += (performance.now() - started - this.averageMs) / 8
      if (--state.outstanding === 0) this.clients.delete(job.client)
      this.next()
    }

    job.work().then(
      (value) => {
        done()
        job.resolve(value)
      },
      (error: unknown) => {
        done()
        job.reject(error)
      },
    )
  }

  private next(): void {
    if (this.waiting === 0) return
    // A scan, once a hash: at most maxWaiting + concurrency clients, each hash some milliseconds.
    let chosen: Client | undefined
    for (const state of this.clients.values()) {
      if (state.waiting.length > 0 && (!chosen || state.servedAt < chosen.servedAt)) chosen = state
    }

    this.waiting--
    this.start(chosen!, chosen!.waiting.shift()!)
  }
}
