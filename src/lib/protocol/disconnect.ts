import {countField, readEventJson} from './event-json.js'

/**
 * Why the server cuts a stream: `slow`, the subscriber fell too far behind
 * (`--slow-policy disconnect`); `shutdown`, the server is stopping.
 */
export type DisconnectReason = 'slow' | 'shutdown'

export const DISCONNECT_REASONS: readonly DisconnectReason[] = ['slow', 'shutdown']

/**
 * The last thing a stream carries before the server cuts it, where its
 * format has room for an event: the in-band `disconnect` event.
 */
export interface Disconnect {
  reason: DisconnectReason
  /** The id of the last message written to this stream before the notice (null: none yet); a client resumes after it. */
  after: string | null
  /** `slow`: bytes written to it that it had not read yet. */
  unsent?: number
  /** `slow`: how long it had been behind --max-pending, in ms. */
  behindMs?: number
}

/** The notice as the one JSON object the SSE data and the NDJSON line carry, and a multipart event part's body. */
export function disconnectJson(notice: Disconnect): string {
  const {reason, after, unsent, behindMs} = notice
  return JSON.stringify({event: 'disconnect', reason, after, ...(unsent === undefined ? {} : {unsent}), ...(behindMs === undefined ? {} : {behindMs: Math.round(behindMs)})})
}

/** A disconnect event's JSON back into a Disconnect; undefined when it is not one (or gives a reason this client does not know). */
export function readDisconnect(text: string): Disconnect | undefined {
  const event = readEventJson(text, 'disconnect')
  if (!event) return undefined
  const {reason, after} = event
  if (!DISCONNECT_REASONS.includes(reason as DisconnectReason) || (after !== null && typeof after !== 'string')) return undefined
  const unsent = countField(event.unsent)
  const behindMs = countField(event.behindMs)
  return {reason: reason as DisconnectReason, after, ...(unsent === undefined ? {} : {unsent}), ...(behindMs === undefined ? {} : {behindMs})}
}
