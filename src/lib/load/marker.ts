/**
 * Load-test messages carry their publisher, sequence number and send time as
 * a parameter of the media type (`text/html; msgbus-load=<publisher>.<seq>.<sent µs>`,
 * `text/html; msgbus-load=96207618179075.1207.1795755609293512`),
 * which travels with the message byte for byte and leaves the body as given
 * (`test-pub -f photo.jpg` publishes the photo unchanged). Filters ignore
 * parameters, so `?type=text/*` still matches. Sequence numbers count per
 * publisher from 0, so test-sub finds a gap, a repeat or a step back per publisher.
 */
export interface LoadMarker {
  /** Which publisher connection sent it: a number unique to one connection of one test-pub run. */
  publisher: number
  seq: number
  /** When it was sent, in microseconds since the epoch (one clock for every process on the machine). */
  sentMicros: number
}

/** The media type parameter that carries a load marker. */
export const MARKER_NAME = 'msgbus-load'
/** `msgbus-load=`, as the byte readers look for it. */
export const MARKER_BYTES = Buffer.from(`${MARKER_NAME}=`)

const MARKER = new RegExp(`;\\s*${MARKER_NAME}=(\\d+)\\.(\\d+)\\.(\\d+)`)

/** `msgbus-load=<publisher>.<seq>.<sent µs>`: the marker as it travels, in a type parameter or (test-pub --marker body) at the start of a body. */
export function markerText(marker: LoadMarker): string {
  return `${MARKER_NAME}=${marker.publisher}.${marker.seq}.${marker.sentMicros}`
}

export function withMarker(type: string, marker: LoadMarker): string {
  return `${type}; ${markerText(marker)}`
}

export function readMarker(type: string | undefined): LoadMarker | undefined {
  const match = type === undefined ? undefined : MARKER.exec(type)
  if (!match) return undefined
  return {publisher: Number(match[1]), seq: Number(match[2]), sentMicros: Number(match[3])}
}

// Both read once: `performance` is a lazy global (a getter) and timeOrigin another, which test-sub would call on every socket read.
const PERFORMANCE = performance
const TIME_ORIGIN = PERFORMANCE.timeOrigin

/** Wall-clock microseconds, finer than Date.now(): what markers carry and latency is measured with. */
export function nowMicros(): number {
  return Math.round((TIME_ORIGIN + PERFORMANCE.now()) * 1000)
}
