import {MARKER_BYTES as MARKER} from './marker.js'
import {readNumbers, viewOf} from './msgbus-part.js'
import {matches} from './stream-reader.js'

const M = MARKER[0]

/**
 * Finds the first load marker in data[from, to) wherever it sits: in a part's
 * Content-Type, in an SSE event's JSON (`"type":"...; msgbus-load=..."`), or
 * at the start of a body (test-pub --marker body). Reads its publisher, seq
 * and sent time into `into`; returns false when there is none. A byte loop
 * with no allocation: streams of other servers are read once per message
 * and connection, like msgbus's own.
 */
export function scanMarker(data: Buffer, from: number, to: number, into: number[]): boolean {
  const last = to - MARKER.length
  for (let i = from; i < last; i++) {
    if (data[i] === M && matches(data, i, MARKER)) return readNumbers(viewOf(data), i + MARKER.length, to, 0x2e, into) >= 0
  }

  return false
}
