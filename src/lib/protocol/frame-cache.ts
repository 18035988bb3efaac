import type {Message} from '../bus/message.js'
import type {Frame} from './stream-encoder.js'

/**
 * Frames of recent replays, oldest out first, bounded by their bytes. When
 * many subscribers resume at once (a server restart, a network blip) they
 * replay much the same messages, each at its own pace: without it every one
 * of them frames every message anew. Keyed by the message object, so a frame
 * never outlives the cache's bound; a frame larger than a quarter of the
 * bound is not kept at all.
 */
export class FrameCache {
  private readonly frames = new Map<Message, Frame>()
  /** Insertion order, oldest at `head`: walking the Map from its start would step over every slot deleted since its last rehash. */
  private order: Message[] = []
  private head = 0
  private bytes = 0

  constructor(private readonly maxBytes: number) {}

  get(message: Message, build: (message: Message) => Frame): Frame {
    const cached = this.frames.get(message)
    if (cached) return cached
    const frame = build(message)
    const size = frame.chunked.length
    if (size > this.maxBytes / 4) return frame
    this.frames.set(message, frame)
    this.order.push(message)
    this.bytes += size
    while (this.bytes > this.maxBytes) {
      const old = this.order[this.head++]
      this.bytes -= this.frames.get(old)!.chunked.length
      this.frames.delete(old)
    }

    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head)
      this.head = 0
    }

    return frame
  }
}
