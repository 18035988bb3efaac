import type {Socket} from 'node:net'
import {getSystemErrorName} from 'node:util'
import {nativeFunctions, plainSocketFd} from '../util/native-module.js'

/** src/native/read-many.c. */
interface NativeReader {
  openReader(onReads: (count: number) => void, bytes: Buffer, info: Int32Array, ring: boolean): object
  addSocket(reader: object, fd: number, id: number): number
  forgetSocket(reader: object): void
  readerRing(reader: object): string | undefined
}

/**
 * How test-sub reads: unset, the native reader at its best (the ready
 * sockets' reads in one io_uring_enter); `recv`, the native reader with one
 * recv(2) a socket; `0`, every socket through Node.
 */
export const NATIVE_READ_ENV = 'MSGBUS_NATIVE_READ'
export const NATIVE_READ_OFF = '0'
export const NATIVE_READ_NO_RING = 'recv'

/** Ready sockets read a round at most (read-many.c's MAX_READY), and the buffer they share: 4 KiB each when all are ready. */
const MOST_READS = 1024
const BUFFER_BYTES = 4 * 1024 * 1024

/** Gets a socket's bytes: data[start, end), valid during the call only. */
export type OnBytes = (data: Buffer, start: number, end: number) => void

interface Entry {
  socket: Socket
  onBytes: OnBytes
}

/**
 * Reads many plain TCP sockets with the native reader: the sockets ready at
 * once are read together, one call into JavaScript for all of them, instead
 * of a libuv read and a JavaScript call each (test-sub's cost a delivery:
 * bench/README.md). Node never reads a socket handed over: the end of its
 * stream and a read error destroy it here, and it leaves the reader when it
 * closes.
 */
export class BatchReader {
  private readonly bytes = Buffer.allocUnsafe(BUFFER_BYTES)
  private readonly info = new Int32Array(3 * MOST_READS)
  private readonly entries: Array<Entry | undefined> = []
  private readonly freeIds: number[] = []
  private readonly handle: object

  /** `ring`: the reads of a round in one system call, where the kernel's io_uring reads as recv(2) would; else a recv(2) each. */
  constructor(
    private readonly native: NativeReader,
    ring: boolean,
  ) {
    this.handle = native.openReader((count) => this.onReads(count), this.bytes, this.info, ring)
  }

  /**
   * Reads `socket` (connected, paused so Node does not read it) from now on;
   * false when it cannot (then the caller reads it through Node).
   */
  add(socket: Socket, onBytes: OnBytes): boolean {
    const fd = plainSocketFd(socket)
    if (fd < 0) return false
    const id = this.freeIds.pop() ?? this.entries.length
    if (this.native.addSocket(this.handle, fd, id) !== 0) {
      if (id < this.entries.length) this.freeIds.push(id)
      return false
    }

    this.entries[id] = {socket, onBytes}
    socket.once('close', () => {
      this.entries[id] = undefined
      this.freeIds.push(id)
      this.native.forgetSocket(this.handle)
    })
    return true
  }

  /** How it reads, for test-sub's report: through an io_uring, or a recv(2) a socket and why. */
  how(): string {
    const noRing = this.native.readerRing(this.handle)
    return noRing === undefined ? 'native reader, io_uring' : `native reader, recv(2) a socket (${noRing})`
  }

  private onReads(count: number): void {
    const {info, bytes} = this
    for (let k = 0; k < 3 * count; k += 3) {
      const entry = this.entries[info[k] as number]
      // Destroyed earlier in this round: its bytes are no one's.
      if (!entry || entry.socket.destroyed) continue
      const start = info[k + 1] as number
      const result = info[k + 2] as number
      if (result > 0) entry.onBytes(bytes, start, start + result)
      else if (result === 0) entry.socket.destroy()
      else entry.socket.destroy(readError(result))
    }
  }
}

/** As Node reports a failed read: `read ECONNRESET`, with code, errno and syscall. */
function readError(errno: number): Error {
  const code = getSystemErrorName(errno)
  return Object.assign(new Error(`read ${code}`), {code, errno, syscall: 'read'})
}

/** The native reader's functions, or why there are none. */
export function nativeReader(): ReturnType<typeof nativeFunctions<NativeReader>> {
  return nativeFunctions<NativeReader>(['openReader', 'addSocket', 'forgetSocket', 'readerRing'])
}

let shared: {reader: BatchReader; why?: undefined} | {reader?: undefined; why: string} | undefined

function sharedReader(): NonNullable<typeof shared> {
  if (shared) return shared
  const choice = process.env[NATIVE_READ_ENV]
  if (choice === NATIVE_READ_OFF) return (shared = {why: `${NATIVE_READ_ENV}=${NATIVE_READ_OFF}`})
  const {functions, why} = nativeReader()
  shared = functions ? {reader: new BatchReader(functions, choice !== NATIVE_READ_NO_RING)} : {why: `native reader: ${why}`}
  return shared
}

/** The process's batch reader, as MSGBUS_NATIVE_READ says; undefined when not built, or `0`. */
export function batchReader(): BatchReader | undefined {
  return sharedReader().reader
}

/** How this process reads plain TCP subscriptions: the batch reader and how, or Node and why. */
export function readsThrough(): string {
  const {reader, why} = sharedReader()
  return reader ? reader.how() : `Node (${why})`
}
