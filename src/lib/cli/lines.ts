/**
 * Splits a byte stream into lines as they arrive: `\n` ends a line, a `\r`
 * before it is dropped, and a last line without `\n` still counts. A stream
 * that fails (or is destroyed) inside a line has no last line: `onCut` is
 * told how many bytes of it were read, and the failure goes on.
 */
export async function* readLines(input: AsyncIterable<Buffer | string>, {onCut}: {onCut?: (bytes: number) => void} = {}): AsyncGenerator<Buffer> {
  let carry: Buffer | undefined
  try {
    for await (const piece of input) {
      let chunk = typeof piece === 'string' ? Buffer.from(piece) : piece
      if (carry) {
        chunk = Buffer.concat([carry, chunk])
        carry = undefined
      }

      let start = 0
      for (let lf = chunk.indexOf(0x0a); lf >= 0; lf = chunk.indexOf(0x0a, start)) {
        const end = lf > start && chunk[lf - 1] === 0x0d ? lf - 1 : lf
        yield chunk.subarray(start, end)
        start = lf + 1
      }

      if (start < chunk.length) carry = chunk.subarray(start)
    }
  } catch (error) {
    // Only the input's own failure lands here: a consumer that stops early returns through the yield.
    if (carry) onCut?.(carry.length)
    throw error
  }

  if (carry) yield carry[carry.length - 1] === 0x0d ? carry.subarray(0, -1) : carry
}
