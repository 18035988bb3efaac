import {countField, readEventJson} from './event-json.js'

/**
 * Messages a subscriber asked for that it will not get: what the
 * `Msgbus-Gap` header and the in-band gap event say. `expired`: the
 * position is older than what the server keeps (or from before a restart
 * that kept nothing); `unknown`: an id newer than any the server issued
 * (another server's, or a clock stepped back); `dropped`: messages skipped
 * while the subscriber was slow (`--slow-policy drop`); `lost`: the shared
 * log behind the bus (`--bus`) lost messages, as a Redis restarted without
 * persistence does.
 */
export type GapReason = 'expired' | 'unknown' | 'dropped' | 'lost'

export const GAP_REASONS: readonly GapReason[] = ['expired', 'unknown', 'dropped', 'lost']

export interface Gap {
  reason: GapReason
  /** The last id the subscriber had: the one it resumed from, or the last it received; null when it asked from a time. */
  after: string | null
  /** Messages follow from after this id; those between `after` and it, on its channel and through its filters, may be lost. */
  from: string
  /** `dropped`: how many messages were skipped. */
  skipped?: number
}

/** The gap as the one JSON object the SSE data and the NDJSON line carry, and a multipart gap part's body. */
export function gapJson(gap: Gap): string {
  return JSON.stringify({event: 'gap', reason: gap.reason, after: gap.after, from: gap.from, ...(gap.skipped === undefined ? {} : {skipped: gap.skipped})})
}

/** A gap event's JSON back into a Gap (what a client reads off the stream); undefined when it is not one. */
export function readGap(text: string): Gap | undefined {
  const event = readEventJson(text, 'gap')
  if (!event) return undefined
  const {reason, after, from, skipped} = event
  if (!GAP_REASONS.includes(reason as GapReason) || typeof from !== 'string' || (after !== null && typeof after !== 'string')) return undefined
  if (skipped !== undefined && countField(skipped) === undefined) return undefined
  return {reason: reason as GapReason, after, from, ...(skipped === undefined ? {} : {skipped: skipped as number})}
}
