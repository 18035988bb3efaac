import type {Gap} from '../protocol/gap.js'

/** What a publisher hands to the bus. */
export interface MessageInput {
  channel: string
  /** The media type as published, parameters and all. */
  type: string
  /** `type/subtype`, lower-cased: what type filters match. */
  essence: string
  /** The publisher's authenticated user name, if any. */
  sender?: string
  body: Buffer
}

/** A message the bus accepted: the input plus the id and time it was given. */
export interface Message extends MessageInput {
  readonly id: string
  /** When the bus accepted it, in unix milliseconds. */
  readonly time: number
  /** Its place in this process's log (history/message-log.ts): one more than the message before. Never on the wire. */
  readonly serial: number
}

/**
 * The message an input becomes once the bus gave it an id and a time. Every
 * one is built by this literal, never by a spread: in V8 `{...input, id}`
 * gives each object a hidden class of its own, so every message kept a map
 * of its own in the history and every property read of a message, in the
 * fan-out and the framing, went megamorphic.
 */
export function acceptedMessage(input: MessageInput, id: string, time: number): Omit<Message, 'serial'> {
  return {channel: input.channel, type: input.type, essence: input.essence, sender: input.sender, body: input.body, id, time}
}

/** The message as a log keeps it, in one shape whatever link or store it came from (see acceptedMessage). */
export function loggedMessage(message: Omit<Message, 'serial'>, serial: number): Message {
  return {
    channel: message.channel,
    type: message.type,
    essence: message.essence,
    sender: message.sender,
    body: message.body,
    id: message.id,
    time: message.time,
    serial,
  }
}

/** One end of the fan-out: whatever the bus hands messages to. */
export interface Subscriber {
  /** The channel subscribed to; '' is every channel. */
  readonly channel: string
  /**
   * Hands the message over if this subscriber wants it. Returns true when it
   * was handed over (written or queued), false when filtered out or dropped.
   */
  deliver(message: Message): boolean
  /**
   * The bus's link lost messages (link.ts): the next one delivered follows a
   * hole. A subscriber that can tell its client (a gap event) does, saying
   * the last message it had.
   */
  lost?(gap: Omit<Gap, 'after'>): void
}
