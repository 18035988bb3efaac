/** A stream reader's partial message, held across reads past this many bytes, is not a stream we can read. */
const MAX_HELD = 64 * 1024 * 1024

/**
 * The start of a message that did not all arrive in one read, copied out of
 * the shared read buffer (which is reused once a read is handled) until the
 * rest comes. Nothing is allocated while messages arrive whole.
 */
export class HeldBytes {
  private bytes: Buffer | undefined

  /** What to read now: data[0, end) after what was held, as a buffer of exactly that length. */
  join(data: Buffer, end: number): Buffer {
    const view = data.subarray(0, end)
    if (!this.bytes) return view
    const joined = Buffer.concat([this.bytes, view])
    this.bytes = undefined
    return joined
  }

  /** Keeps data[from...] for the next read. */
  keep(data: Buffer, from: number): void {
    if (data.length - from > MAX_HELD) throw new Error(`a message of over ${MAX_HELD} bytes held back`)
    if (from < data.length) this.bytes = Buffer.from(data.subarray(from))
  }
}
