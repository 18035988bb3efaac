import {finished, type Readable} from 'node:stream'

/**
 * Every chunk of a response body that arrived, then its error if it failed.
 *
 * A stream the server cuts short (a slow subscriber: no last chunk, so
 * undici fails it, "other side closed") is destroyed with what its reader
 * had not read yet still buffered, and a stream's own async iterator drops
 * that. Those last chunks carry the last messages and the server's notice
 * of why it cut the stream, so a reader slower than its socket lost exactly
 * what says why it lost anything. read() still hands out what a destroyed
 * stream holds.
 */
export async function* bodyChunks(body: Readable): AsyncGenerator<Buffer> {
  let failure: unknown
  let over = false
  let wake: (() => void) | undefined
  const signal = (): void => {
    wake?.()
    wake = undefined
  }

  // finished() says how it ended: an error, a close before its end ("premature close": cut short all the same), or its end.
  const cleanup = finished(body, (error) => {
    failure ??= error ?? undefined
    over = true
    signal()
  })
  body.on('readable', signal)
  try {
    for (;;) {
      const chunk = body.read() as Buffer | null
      if (chunk !== null) {
        yield chunk
        continue
      }

      if (failure !== undefined) throw failure
      if (over) return
      await new Promise<void>((resolve) => {
        wake = resolve
      })
    }
  } finally {
    body.off('readable', signal)
    cleanup()
    // Left early (the reader stopped): let go of the connection; a destroy may still report an error, which is no one's to hear now.
    body.on('error', () => {})
    if (!body.destroyed) body.destroy()
  }
}
