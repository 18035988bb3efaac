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
  private bytes = 0

  constructor(private readonly maxBytes: number) {}

  get(message: Message, build: (message: Message) => Frame): Frame {
    const cached = this.frames.get(message)
    if (cached) return cached
    const frame = build(message)
    const size = frame.chunked.length
    if (size > this.maxBytes / 4) return frame
    this.frames.set(message, frame)
    this.bytes += size
    for (const [old, oldFrame] of this.frames) {
      if (this.bytes <= this.maxBytes) break
      this.frames.delete(old)
      this.bytes -= oldFrame.chunked.length
    }

    return frame
  }
}
