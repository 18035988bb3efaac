/**
 * The fields of an in-band event (a gap, a disconnect) read off a stream:
 * the JSON object whose `event` is `name`; undefined for anything else, so
 * a reader skips what is not the event it expects.
 */
export function readEventJson(text: string, name: string): Record<string, unknown> | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }

  const event = value as Record<string, unknown> | null
  return typeof event === 'object' && event !== null && !Array.isArray(event) && event.event === name ? event : undefined
}

/** A count in an event: a non-negative safe integer, else undefined. */
export function countField(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : undefined
}
