/**
 * Seeded random numbers, so that whatever a test or the soak drew at random
 * can be drawn again: the same seed gives the same numbers.
 */

/** A 32-bit seed from a string (FNV-1a), to give each user of a run's seed a stream of its own. */
export function hashSeed(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }

  return hash >>> 0
}

/** A new seed, for a run that was not given one. */
export function newSeed(): number {
  return Math.floor(Math.random() * 2 ** 32)
}

export interface RandomSource {
  readonly seed: number
  /** A number in [0, 1), as Math.random. */
  next(): number
  /** A whole number in [0, n). */
  int(n: number): number
  /** `length` bytes. */
  bytes(length: number): Buffer
}

/** mulberry32: small, fast, and good enough to pick sizes, holds and bytes. */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0
  const word = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  return {
    seed: seed >>> 0,
    next: () => word() / 2 ** 32,
    int: (n) => Math.floor((word() / 2 ** 32) * n),
    bytes(length) {
      const bytes = Buffer.allocUnsafe(length)
      let at = 0
      for (; at + 4 <= length; at += 4) bytes.writeUInt32LE(word(), at)
      if (at < length) {
        const last = word()
        for (let k = 0; at < length; at++, k++) bytes[at] = (last >>> (8 * k)) & 0xff
      }

      return bytes
    },
  }
}
