import type {MessageInput} from '../bus/message.js'
import type {StoredMessage} from '../history/store.js'

/**
 * A message as a stream entry: one field a property, all binary-safe (the
 * body is bytes; the strings are written as UTF-8). `o` names who appended
 * it (`<node>:<ticket>`), so the node that did can answer its publisher
 * once its own follow loop has handed the message to its subscribers.
 */
export function entryFields(input: MessageInput, origin: string): Array<string | Buffer> {
  const fields: Array<string | Buffer> = ['c', input.channel, 't', input.type, 'e', input.essence]
  if (input.sender !== undefined) fields.push('s', input.sender)
  fields.push('o', origin, 'b', input.body)
  return fields
}

/** A message read back, with who appended it (`''` for an entry that does not say). */
export interface ReadEntry {
  message: StoredMessage
  origin: string
}

/** The time a stream id holds: the Redis server's clock when it took the entry, unix ms. */
export function idTime(id: string): number {
  return Number(id.slice(0, id.indexOf('-')))
}

/** An entry as XREAD / XRANGE give it with buffers: `[id, [field, value, ...]]`. */
export function decodeEntry(raw: [Buffer, Buffer[]]): ReadEntry {
  const id = raw[0].toString('latin1')
  const fields = raw[1]
  let channel = ''
  let type = ''
  let essence = ''
  let sender: string | undefined
  let origin = ''
  let body: Buffer = Buffer.alloc(0)
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1]
    switch (fields[i].toString('latin1')) {
      case 'c':
        channel = value.toString()
        break
      case 't':
        type = value.toString()
        break
      case 'e':
        essence = value.toString()
        break
      case 's':
        sender = value.toString()
        break
      case 'o':
        origin = value.toString('latin1')
        break
      case 'b':
        body = value
        break
      // A field a later version adds is passed over.
    }
  }

  const message: StoredMessage = {id, time: idTime(id), channel, type, essence, body}
  if (sender !== undefined) message.sender = sender
  return {message, origin}
}
