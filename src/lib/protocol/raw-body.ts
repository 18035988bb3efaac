import {isTextualType} from './json-message.js'

const NEWLINE = 0x0a

/**
 * Whether raw output (`?format=raw`, `msgbus dump --raw`) adds a newline
 * after a body: only after text (a textual type, json-message.ts) that does
 * not end in one, so log lines stay lines for `tail -f` readers; any other
 * body is written byte for byte, so `dump --raw -n 1 > out.png` is the
 * picture. One rule, so the server's and the CLI's raw output agree.
 */
export function rawNeedsNewline(type: string, body: Buffer): boolean {
  return (body.length === 0 || body[body.length - 1] !== NEWLINE) && isTextualType(type)
}
