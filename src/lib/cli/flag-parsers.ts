import {parsePosition, type Position} from '../protocol/position.js'
import {parseDuration} from '../util/duration.js'
import {parseSize} from '../util/size.js'

/**
 * The parse functions of msgbus's own flag kinds (flags.ts), apart from
 * oclif, so that the fast path (fast-parse.ts) runs the very same ones.
 * Each carries its name under FLAG_PARSER: scripts/build.ts reads it off a
 * command's flags to tell the fast path which one a flag uses.
 */
export const FLAG_PARSER = Symbol.for('msgbus.flagParser')

function named<T>(name: string, parse: (input: string) => Promise<T>): (input: string) => Promise<T> {
  return Object.assign(parse, {[FLAG_PARSER]: name})
}

export const FLAG_PARSERS = {
  /** Bytes, or a number with k, M or G (`64k`, `8MiB`). */
  size: named('size', async (input) => parseSize(input)),
  /** A duration (`90s`, `10m`, `1h`; a bare number is seconds), as seconds. */
  duration: named('duration', async (input) => parseDuration(input) / 1000),
  /** Where a subscription starts: a message id, a time, a duration back from now, or `all`. */
  position: named('position', async (input): Promise<Position> => parsePosition(input)),
}

export type FlagParserName = keyof typeof FLAG_PARSERS
