import {MsgbusError} from './errors.js'

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
}

/**
 * Parses a size given on the command line: bytes, or a number with a binary
 * suffix (`64k`, `8M`, `8MiB`, `1.5g`). Suffixes are powers of 1024, as in
 * nginx and curl; "MB" means the same as "MiB" because that is what people
 * who type it into a limit mean. Throws a MsgbusError, ERR_MSGBUS_SIZE_INVALID.
 */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  const unit = match ? UNITS[match[2].toLowerCase()] : undefined
  if (!match || unit === undefined) {
    throw new MsgbusError('ERR_MSGBUS_SIZE_INVALID', `not a size: ${JSON.stringify(text)} (bytes, or a number with k, M or G, as in 64k or 8MiB)`)
  }

  const bytes = Math.floor(Number(match[1]) * unit)
  if (!Number.isSafeInteger(bytes)) throw new MsgbusError('ERR_MSGBUS_SIZE_INVALID', `size too large: ${JSON.stringify(text)}`)
  return bytes
}

export function formatSize(bytes: number): string {
  for (const [suffix, unit] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit} ${suffix}`
  }

  return `${bytes} bytes`
}

/** As a user would type it, and parseSize reads it back: `8MiB`, `64KiB`, `1000`. */
export function sizeAsTyped(bytes: number): string {
  return formatSize(bytes).replace(/ bytes$/, '').replace(' ', '')
}
