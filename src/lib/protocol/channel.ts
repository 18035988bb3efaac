import {codedError} from '../util/errors.js'

/** Where bus URLs live: `/msgbus/<channel>`. */
export const BUS_PREFIX = '/msgbus/'
export const MAX_CHANNEL_BYTES = 255

/** A channel name (or the URL path it came from) that is not allowed: bad percent-encoding or UTF-8, control characters, too long. */
export class ChannelError extends codedError('ERR_MSGBUS_CHANNEL_INVALID') {}

const utf8 = new TextDecoder('utf-8', {fatal: true, ignoreBOM: true})
/** C0 controls (TAB included) and DEL: never in a channel or user name, which reach other clients' streams as header values. */
export const CONTROL = /[\u0000-\u001F\u007F]/

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30
  const lower = code | 0x20
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10
  return -1
}

/**
 * Percent-decodes a URL path segment strictly: `%` must be followed by two
 * hex digits, and the bytes must be valid UTF-8. `rawPath` is the path as
 * received; Node hands request targets over as latin1, one char per byte.
 */
export function percentDecode(rawPath: string): string {
  const bytes = Buffer.from(rawPath, 'latin1')
  const out = Buffer.allocUnsafe(bytes.length)
  let length = 0
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]
    if (byte !== 0x25) {
      out[length++] = byte
      continue
    }

    const high = i + 2 < bytes.length ? hexValue(bytes[i + 1]) : -1
    const low = high >= 0 ? hexValue(bytes[i + 2]) : -1
    if (low < 0) throw new ChannelError('invalid percent-encoding in the URL')
    out[length++] = (high << 4) | low
    i += 2
  }

  try {
    return utf8.decode(out.subarray(0, length))
  } catch {
    throw new ChannelError('the URL is not valid UTF-8 once percent-decoded')
  }
}

/**
 * Decodes the channel from the part of a bus URL after `/msgbus/` (query
 * already removed). The empty string is the all-channels channel.
 */
export function decodeChannel(rawChannel: string): string {
  const channel = percentDecode(rawChannel)
  if (CONTROL.test(channel)) throw new ChannelError('control characters are not allowed in a channel name')
  if (Buffer.byteLength(channel) > MAX_CHANNEL_BYTES) {
    throw new ChannelError(`channel name longer than ${MAX_CHANNEL_BYTES} bytes`)
  }

  return channel
}

/** The channel's URL path, each `/`-separated segment percent-encoded. */
export function channelPath(channel: string): string {
  return BUS_PREFIX + channel.split('/').map((segment) => encodeURIComponent(segment)).join('/')
}
