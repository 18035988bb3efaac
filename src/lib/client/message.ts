import {isUtf8} from 'node:buffer'
import {BUS_PREFIX, decodeChannel} from '../protocol/channel.js'
import type {Part} from '../protocol/multipart-parser.js'

/** A message as a client receives it. */
export interface ReceivedMessage {
  /** Message-ID, when the server sent one (the 2007 msgbus did not). */
  id?: string
  channel: string
  type: string
  /** From: the publisher's user name, when it authenticated. */
  sender?: string
  headers: Record<string, string>
  body: Buffer
  /** When it was received, in unix milliseconds. */
  time: number
}

/** The channel named by a part's Content-Location (a path or a whole URL), else the one subscribed to. */
function channelOf(location: string | undefined, fallback: string): string {
  if (!location) return fallback
  let path = location
  if (/^[a-z][a-z0-9+.-]*:/i.test(location)) {
    try {
      path = new URL(location).pathname
    } catch {
      return fallback
    }
  }

  if (!path.startsWith(BUS_PREFIX)) return fallback
  try {
    return decodeChannel(path.slice(BUS_PREFIX.length))
  } catch {
    return fallback
  }
}

/**
 * Part headers are read as latin1, one character a byte; msgbus writes the
 * From: user name as UTF-8, so a value whose bytes are UTF-8 is read as such.
 */
function utf8Value(value: string | undefined): string | undefined {
  if (value === undefined || !/[^\x00-\x7f]/.test(value)) return value
  const bytes = Buffer.from(value, 'latin1')
  return isUtf8(bytes) ? bytes.toString('utf8') : value
}

/** RFC 2046: a part without Content-Type is plain text. */
const DEFAULT_TYPE = 'text/plain'

export function partToMessage(part: Part, fallbackChannel: string, time = Date.now()): ReceivedMessage {
  const {headers} = part
  return {
    id: headers['message-id'],
    channel: channelOf(headers['content-location'], fallbackChannel),
    type: headers['content-type'] ?? DEFAULT_TYPE,
    sender: utf8Value(headers.from),
    headers,
    body: part.body,
    time,
  }
}
