import type {StoredMessage} from '../history/store.js'
import type {MessageInput} from '../bus/message.js'
import {parseMessageId} from '../bus/message-id.js'

/**
 * One JetStream message holds a batch: every form (and single message) a
 * node had waiting when it published, with the ids it gave them. A form is
 * then contiguous in the log without JetStream's atomic batches (not in
 * nats-server 2.9), and every node splits the batch into the same messages
 * with the same ids: the ids travel in it, they are not worked out again.
 *
 * Layout: a 4-byte big-endian length, that many bytes of JSON
 * `[[id, channel, type, essence, sender|null, bodyLength], ...]`, then the
 * bodies one after another, byte for byte (binary bodies stay exact).
 */
type Entry = [id: string, channel: string, type: string, essence: string, sender: string | null, length: number]

export function encodeBatch(ids: string[], inputs: MessageInput[]): Buffer {
  const entries: Entry[] = inputs.map((input, i) => [ids[i], input.channel, input.type, input.essence, input.sender ?? null, input.body.length])
  const head = Buffer.from(JSON.stringify(entries))
  const length = Buffer.alloc(4)
  length.writeUInt32BE(head.length)
  return Buffer.concat([length, head, ...inputs.map((input) => input.body)])
}

/** The batch's messages, fresh objects whose bodies are copies (the payload's buffer is the client's); time is the id's milliseconds, the same on every node. */
export function decodeBatch(payload: Uint8Array): StoredMessage[] {
  const data = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  const headLength = data.readUInt32BE(0)
  const entries = JSON.parse(data.subarray(4, 4 + headLength).toString()) as Entry[]
  let offset = 4 + headLength
  return entries.map(([id, channel, type, essence, sender, length]) => {
    const body = Buffer.from(data.subarray(offset, offset + length))
    offset += length
    const message: StoredMessage = {id, time: parseMessageId(id)[0], channel, type, essence, body}
    if (sender !== null) message.sender = sender
    return message
  })
}

/** Bytes a batch of these inputs takes, within a little: to keep one under the server's max_payload. */
export function batchSize(inputs: MessageInput[]): number {
  let size = 64
  for (const input of inputs) size += input.body.length + input.channel.length * 3 + input.type.length * 2 + (input.sender?.length ?? 0) * 3 + 80
  return size
}
