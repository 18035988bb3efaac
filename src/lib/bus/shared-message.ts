import {CONTROL, MAX_CHANNEL_BYTES} from '../protocol/channel.js'
import {mediaTypeOrReason} from '../protocol/media-type.js'
import {MAX_USER_BYTES} from '../server/access/basic-auth.js'
import type {StoredMessage} from '../history/store.js'
import {compareMessageIds, isMessageId} from './message-id.js'

/**
 * Why a message read from a shared log (a Redis stream, a JetStream stream)
 * cannot go to subscribers, or undefined when it can. Anyone who can write
 * to that log can write entries no publish of ours made: their type, sender
 * and id reach every stream as header lines (`Content-Type:`, `From:`,
 * `Message-ID:`, SSE's `id:`), so they are held to what a publish over HTTP
 * is held to, and an id must come after the newest this process has, or the
 * log's order (and every resume) would break. The essence is worked out
 * again from the type, not taken from the entry.
 */
export function refusalOf(message: StoredMessage, newest: string): string | undefined {
  const {id, channel, type, sender, body} = message
  if (typeof id !== 'string' || !isMessageId(id)) return `${JSON.stringify(String(id).slice(0, 40))} is not a message id`
  if (compareMessageIds(id, newest) <= 0) return `id ${id} is not after ${newest}, the newest this node has`
  if (typeof channel !== 'string' || channel === '' || CONTROL.test(channel) || Buffer.byteLength(channel) > MAX_CHANNEL_BYTES) return `id ${id}: not a channel name`
  const media = typeof type === 'string' ? mediaTypeOrReason(type) : 'no type'
  if (typeof media === 'string' || media.full !== type) return `id ${id}: not a media type: ${typeof media === 'string' ? media : JSON.stringify(type)}`
  if (sender !== undefined && (typeof sender !== 'string' || CONTROL.test(sender) || Buffer.byteLength(sender) > MAX_USER_BYTES)) return `id ${id}: not a user name`
  if (!Buffer.isBuffer(body)) return `id ${id}: no body`
  message.essence = media.essence
  return undefined
}
