import type {ChalkInstance} from 'chalk'
import type {ReceivedMessage} from '../client/message.js'
import {isTextBody, isTextualType, toJsonMessage} from '../protocol/json-message.js'
import {rawNeedsNewline} from '../protocol/raw-body.js'

export type OutputFormat = 'line' | 'raw' | 'json' | 'headers'

const NEWLINE = Buffer.from('\n')

const ESCAPES: Record<string, string> = {'\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\'}

/** `\x01` for a byte-sized code, `\u2028` above: `\x2028` would read as `\x20` and "28". */
function escapeCode(code: number): string {
  return code > 0xff ? `\\u${code.toString(16).padStart(4, '0')}` : `\\x${code.toString(16).padStart(2, '0')}`
}

/** Text on one line: newlines, tabs, backslashes and other control characters escaped. */
export function escapeText(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\\\u2028\u2029]/g, (c) => ESCAPES[c] ?? escapeCode(c.charCodeAt(0)))
}

/**
 * One message as one line, made for grep: time, channel (spaces and `%`
 * percent-encoded), type (without white space), sender (`-` if none), length,
 * and the body escaped; a binary body is shown only as its length and type.
 */
export function formatLine(message: ReceivedMessage, colour?: ChalkInstance): string {
  // Each field is free of spaces, so `cut -d' '` and awk can split the line.
  const time = new Date(message.time).toISOString()
  const channel = message.channel === '' ? '/' : message.channel.replace(/[% ]/g, (c) => (c === '%' ? '%25' : '%20'))
  const body = isTextBody(message.type, message.body) ? escapeText(message.body.toString('utf8')) : `[${message.body.length} bytes of ${message.type}]`
  const type = escapeText(message.type.replace(/\s+/g, ''))
  const sender = escapeText(message.sender ?? '-').replace(/ /g, '\\x20')
  if (!colour) return `${time} ${channel} ${type} ${sender} ${message.body.length} ${body}\n`
  return `${colour.dim(time)} ${colour.cyan(channel)} ${colour.magenta(type)} ${colour.yellow(sender)} ${colour.dim(String(message.body.length))} ${body}\n`
}

/** The parser keeps header names lower-cased; shown, they take their usual spelling back. */
function headerName(name: string): string {
  return name === 'message-id' ? 'Message-ID' : name.replace(/(^|-)([a-z])/g, (_, dash: string, letter: string) => dash + letter.toUpperCase())
}

/** The part's headers, then a blank line, as the 2007 msgdump printed them. */
export function formatHeaders(message: ReceivedMessage): string {
  return Object.entries(message.headers).map(([name, value]) => `${headerName(name)}: ${escapeText(value)}\n`).join('') + '\n'
}

/** Bytes to write for one message in the chosen format. */
export function formatMessage(message: ReceivedMessage, format: OutputFormat, colour?: ChalkInstance, terminal = false): Buffer | string {
  switch (format) {
    case 'raw':
      // As curl does: binary bytes would garble a terminal (and may drive it: escape sequences).
      if (terminal && !isTextualType(message.type)) return `(a ${message.type || 'binary'} body of ${message.body.length} bytes, not written to a terminal: redirect stdout, or use --save DIR)\n`
      return rawNeedsNewline(message.type, message.body) ? Buffer.concat([message.body, NEWLINE]) : message.body

    case 'json':
      return `${JSON.stringify(toJsonMessage(message))}\n`
    case 'headers':
      return formatHeaders(message)
    default:
      return formatLine(message, colour)
  }
}

/** A message as the 2007 test-sub printed it: `channel type sender [body]`. */
export function formatTestSubPrint(part: {headers: Record<string, string>; body: Buffer}, subscribed: string): string {
  // The 2007 msgbus sends no Content-Location: then the channel is the one subscribed to, as dump says it.
  const location = part.headers['content-location'] ?? ''
  const channel = location.startsWith('/msgbus/') ? location.slice('/msgbus/'.length) : location || subscribed || '-'
  const type = (part.headers['content-type'] ?? 'text/plain').replace(/\s+/g, '')
  const body = isTextBody(type, part.body) ? escapeText(part.body.toString('utf8')) : `${part.body.length} bytes`
  return `${channel} ${type} ${part.headers.from ?? '-'} [${body}]\n`
}
