import {isUtf8} from 'node:buffer'

/**
 * A message as one JSON object: what `msgbus dump --json` prints, and the
 * data of the SSE and NDJSON stream formats. One definition, so every
 * reader sees the same keys.
 */
export interface JsonMessage {
  id: string | null
  channel: string
  type: string
  sender: string | null
  /** ISO 8601: when the message was received (client) or accepted (server). */
  time: string
  length: number
  /** The body as text, or base64 when `encoding` says so. */
  body: string
  encoding?: 'base64'
}

export interface MessageLike {
  id?: string
  channel: string
  type: string
  sender?: string
  body: Buffer
  time: number | Date
}

const TEXTUAL = /^(?:text\/|application\/(?:json|xml|javascript|ecmascript|x-www-form-urlencoded|x-ndjson|ld\+json)\b|[a-z]+\/[^;]*\+(?:json|xml)\b)/i

/** Types whose bodies are text: text/*, JSON, XML, JavaScript, form data. */
export function isTextualType(type: string): boolean {
  return TEXTUAL.test(type.trim())
}

/** True when a body can be shown as text: a textual type and valid UTF-8. */
export function isTextBody(type: string, body: Buffer): boolean {
  return isTextualType(type) && isUtf8(body)
}

export function toJsonMessage(message: MessageLike): JsonMessage {
  const text = isTextBody(message.type, message.body)
  const json: JsonMessage = {
    id: message.id ?? null,
    channel: message.channel,
    type: message.type,
    sender: message.sender ?? null,
    time: new Date(message.time).toISOString(),
    length: message.body.length,
    body: text ? message.body.toString('utf8') : message.body.toString('base64'),
  }
  if (!text) json.encoding = 'base64'
  return json
}
