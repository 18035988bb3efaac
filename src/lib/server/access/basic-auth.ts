import {createHash, timingSafeEqual} from 'node:crypto'
import {HttpError} from '../http/http-error.js'
import {CONTROL} from '../../protocol/channel.js'

export interface Credentials {
  user: string
  password: string
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * The longest user name, in bytes of UTF-8: as long as a channel name. The
 * name becomes the message's sender, which `?sender=` filters match and
 * every subscriber's stream carries, so it is bounded like everything else
 * they see.
 */
export const MAX_USER_BYTES = 255

/**
 * Reads HTTP Basic credentials (RFC 7617, UTF-8). Other schemes are not ours
 * and are ignored; Basic credentials that cannot be read are a 400, as is a
 * user name with control characters, which would otherwise reach every
 * subscriber's stream as a `From:` header, or one over MAX_USER_BYTES.
 */
export function parseBasicAuth(header: string | undefined): Credentials | undefined {
  if (!header) return undefined
  const match = /^\s*basic\s+(\S*)\s*$/i.exec(header)
  if (!match) return undefined
  const token = match[1]
  if (!BASE64.test(token) || token.length % 4 === 1) throw new HttpError(400, 'malformed Basic credentials')
  const decoded = Buffer.from(token, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) throw new HttpError(400, 'malformed Basic credentials: no colon between user and password')
  const user = decoded.slice(0, colon)
  if (CONTROL.test(user)) throw new HttpError(400, 'control characters are not allowed in a user name')
  const bytes = Buffer.byteLength(user)
  if (bytes > MAX_USER_BYTES) throw new HttpError(400, `a user name has at most ${MAX_USER_BYTES} bytes, not ${bytes}`)
  return {user, password: decoded.slice(colon + 1)}
}

/** Compares in constant time: both sides are hashed first, so not even the length leaks. */
export function secretMatches(secret: string, password: string): boolean {
  const expected = createHash('sha256').update(secret).digest()
  const given = createHash('sha256').update(password).digest()
  return timingSafeEqual(expected, given)
}
