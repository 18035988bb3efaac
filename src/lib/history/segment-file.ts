/**
 * The segment files of a history folder: their names, reading one back, and
 * making a new one. A segment is append-only; it begins with a header record
 * and holds the messages that follow, in the order they were accepted.
 */
import {constants} from 'node:fs'
import {open, readdir, readFile, unlink, type FileHandle} from 'node:fs/promises'
import {join} from 'node:path'
import type {HistorySync} from './store.js'
import {decodeRecords, encodeHeader, type DecodedRecord} from './record.js'

const NAME = /^(\d{16})-(\d{16})\.seg$/

/** A segment on disk: its file, and the id every message in it follows. */
export interface Segment {
  readonly name: string
  readonly after: string
}

/** The file name of the segment whose messages follow `after`: both numbers zero-padded to 16 digits (the most an id has), so names sort as ids do. */
export function segmentName(after: string): string {
  const [ms, seq] = after.split('-')
  return `${ms.padStart(16, '0')}-${seq.padStart(16, '0')}.seg`
}

/** The folder's segments, oldest first; other files (the lock) are not segments. */
export async function listSegments(dir: string): Promise<Segment[]> {
  const segments: Segment[] = []
  for (const name of (await readdir(dir)).sort()) {
    const match = NAME.exec(name)
    if (match) segments.push({name, after: `${Number(match[1])}-${Number(match[2])}`})
  }

  return segments
}

/** What a segment file holds. */
export interface SegmentContents {
  records: DecodedRecord[]
  /** Where its whole records end. */
  end: number
  /** Its length on disk: more than `end` when its tail is torn or corrupt. */
  size: number
  /** Whether it begins with the header its name says: without it, nothing in it is read. */
  headed: boolean
  /** Why its whole records end before `size`. */
  stop?: 'torn' | 'corrupt'
}

/** Reads a segment whole: a header first, with the id of its name, then messages. */
export async function readSegment(dir: string, segment: Segment): Promise<SegmentContents> {
  const bytes = await readFile(join(dir, segment.name))
  const expected = (record: DecodedRecord, index: number) => (index === 0 ? record.kind === 'header' && record.header.after === segment.after : record.kind === 'message')
  const {records, end, stop} = decodeRecords(bytes, expected)
  return {records, end, size: bytes.length, headed: records.length > 0, stop}
}

/** Writes all of `bytes`: a write may take only part of them (a full disk part-way). */
export async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const {bytesWritten} = await handle.write(bytes, at, bytes.length - at)
    at += bytesWritten
  }
}

/** Opens a segment to append to it. */
export function openForAppend(dir: string, segment: Segment): Promise<FileHandle> {
  return open(join(dir, segment.name), constants.O_WRONLY | constants.O_APPEND)
}

/** Makes a folder's entries durable: a new segment's name, which the file's own fdatasync does not cover. */
export async function syncFolder(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Makes a new segment, its header written, open to append to. Unless the
 * policy is `never`, it is on disk, name and all, before any message goes into it:
 * a crash then never leaves a folder whose newest segment has lost its
 * header, and its messages with it.
 */
export async function createSegment(dir: string, after: string, sync: HistorySync): Promise<{segment: Segment; handle: FileHandle; size: number}> {
  const segment = {name: segmentName(after), after}
  const path = join(dir, segment.name)
  const handle = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    const header = encodeHeader({after})
    await writeAll(handle, header)
    if (sync !== 'never') {
      await handle.datasync()
      await syncFolder(dir)
    }

    return {segment, handle, size: header.length}
  } catch (error) {
    // Gone, so that the next try can make it again under the same name.
    await handle.close().catch(() => {})
    await unlink(path).catch(() => {})
    throw error
  }
}
