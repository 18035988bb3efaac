/**
 * The record codec of the history's segment files (docs: "History on disk").
 *
 *   [u32 length of the rest][u32 CRC-32 of the rest]   the frame, little-endian
 *   [u32 length of the head][head: JSON][body]         the rest
 *
 * The length comes first so a reader can step from record to record without
 * parsing heads; the checksum covers everything after the frame, so a record
 * torn by a crash mid-write, or bytes the disk lost, are told from a whole one.
 */
import {crc32} from 'node:zlib'
import type {StoredMessage} from './store.js'

const FRAME = 8
const HEAD_LENGTH = 4
/** The format of the files; a segment whose header says otherwise is not read. */
export const FORMAT_VERSION = 1

/** What a segment file begins with. */
export interface SegmentHeader {
  /** Every message after this id is in this segment or a later one (the name of the file says it too). */
  after: string
}

export type DecodedRecord = {kind: 'header'; header: SegmentHeader} | {kind: 'message'; message: StoredMessage}

export interface Decoded {
  records: DecodedRecord[]
  /** Where the whole records end: the length of the buffer, unless `stop` says why not. */
  end: number
  /** Why the records stop before the end: a record cut short (`torn`), or one whose checksum or head is wrong (`corrupt`). */
  stop?: 'torn' | 'corrupt'
}

function frame(head: object, body: Buffer | undefined): Buffer {
  const headBytes = Buffer.from(JSON.stringify(head))
  const bodyLength = body?.length ?? 0
  const record = Buffer.allocUnsafe(FRAME + HEAD_LENGTH + headBytes.length + bodyLength)
  record.writeUInt32LE(HEAD_LENGTH + headBytes.length + bodyLength, 0)
  record.writeUInt32LE(headBytes.length, FRAME)
  headBytes.copy(record, FRAME + HEAD_LENGTH)
  body?.copy(record, FRAME + HEAD_LENGTH + headBytes.length)
  record.writeUInt32LE(crc32(record.subarray(FRAME)), 4)
  return record
}

/** A message's record: id, time, channel, types and sender in the head, the body as it is. */
export function encodeRecord(message: StoredMessage): Buffer {
  const {id, time, channel, type, essence, sender} = message
  return frame(sender === undefined ? {id, time, channel, type, essence} : {id, time, channel, type, essence, sender}, message.body)
}

/** The record a segment file begins with. */
export function encodeHeader(header: SegmentHeader): Buffer {
  return frame({segment: FORMAT_VERSION, after: header.after}, undefined)
}

const isString = (value: unknown): value is string => typeof value === 'string'

/** A head's JSON as a record, or undefined when it is not one this format writes. */
function recordOf(head: Record<string, unknown>, body: Buffer): DecodedRecord | undefined {
  if (head.segment !== undefined) {
    return head.segment === FORMAT_VERSION && isString(head.after) && body.length === 0 ? {kind: 'header', header: {after: head.after}} : undefined
  }

  const {id, time, channel, type, essence, sender} = head
  if (!isString(id) || typeof time !== 'number' || !isString(channel) || !isString(type) || !isString(essence)) return undefined
  if (sender !== undefined && !isString(sender)) return undefined
  // A view into the bytes read, not a copy: a reader that keeps only some of them copies those (recover.ts).
  const message: StoredMessage = {id, time, channel, type, essence, body}
  if (sender !== undefined) message.sender = sender
  return {kind: 'message', message}
}

/**
 * Reads records from the start of `bytes` up to the first that is cut short
 * or does not check out (nor passes `expected`, given each record and its
 * place): a reader trusts nothing after that, as a record's length is what
 * leads to the next one.
 */
export function decodeRecords(bytes: Buffer, expected: (record: DecodedRecord, index: number) => boolean = () => true): Decoded {
  const records: DecodedRecord[] = []
  let at = 0
  while (at < bytes.length) {
    if (bytes.length - at < FRAME) return {records, end: at, stop: 'torn'}
    const length = bytes.readUInt32LE(at)
    if (length < HEAD_LENGTH) return {records, end: at, stop: 'corrupt'}
    if (bytes.length - at - FRAME < length) return {records, end: at, stop: 'torn'}
    const rest = bytes.subarray(at + FRAME, at + FRAME + length)
    if (crc32(rest) !== bytes.readUInt32LE(at + 4)) return {records, end: at, stop: 'corrupt'}
    const headLength = rest.readUInt32LE(0)
    if (headLength > length - HEAD_LENGTH) return {records, end: at, stop: 'corrupt'}
    let head: unknown
    try {
      head = JSON.parse(rest.toString('utf8', HEAD_LENGTH, HEAD_LENGTH + headLength))
    } catch {
      return {records, end: at, stop: 'corrupt'}
    }

    const record = typeof head === 'object' && head !== null ? recordOf(head as Record<string, unknown>, rest.subarray(HEAD_LENGTH + headLength)) : undefined
    if (!record || !expected(record, records.length)) return {records, end: at, stop: 'corrupt'}
    records.push(record)
    at += FRAME + length
  }

  return {records, end: at}
}
