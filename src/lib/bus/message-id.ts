/**
 * Message ids are `<unix-ms>-<seq>`, compared as a pair of integers. They
 * never go down, even when the wall clock steps back: the generator keeps the
 * last millisecond it used and counts on from there until the clock passes it.
 */
export class MessageIdGenerator {
  private lastMs = 0
  private seq = 0

  constructor(
    private readonly now: () => number = Date.now,
    /** An id every one issued must follow: the last one a restarted server's history holds. */
    after?: string,
  ) {
    if (after !== undefined) [this.lastMs, this.seq] = parseMessageId(after)
  }

  next(): string {
    const ms = this.now()
    if (ms > this.lastMs) {
      this.lastMs = ms
      this.seq = 0
    } else {
      this.seq++
    }

    return `${this.lastMs}-${this.seq}`
  }
}

/** Compares two ids in the order the server issued them; negative when a < b. */
export function compareMessageIds(a: string, b: string): number {
  const [aMs, aSeq] = parseMessageId(a)
  const [bMs, bSeq] = parseMessageId(b)
  return aMs === bMs ? aSeq - bSeq : aMs - bMs
}

const MESSAGE_ID = /^\d{1,16}-\d{1,16}$/

/** True for a string of the form the server issues ids in. */
export function isMessageId(value: string): boolean {
  return MESSAGE_ID.test(value)
}

/** An id's two numbers, for code that compares many ids: `[ms, seq]`. */
export function parseMessageId(id: string): [ms: number, seq: number] {
  const dash = id.indexOf('-')
  return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))]
}
