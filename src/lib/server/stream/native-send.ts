import type {Socket} from 'node:net'
import {nativeFunctions} from '../../util/native-module.js'

/** src/native/send-many.c: socket i is sent buffers[which[i]]; results[i] is the bytes taken or -errno. */
export interface NativeSender {
  sendMany(fds: Int32Array, buffers: Buffer[], which: Int32Array, count: number, results: Int32Array): void
  /** From now on a call's sends enter the kernel together, through an io_uring; or why they cannot. */
  useRing(): string | undefined
}

/**
 * How the server writes to subscribers: `0`, through Node's streams even
 * when the native sender is built; `send`, the native sender with one
 * send(2) a socket (no io_uring); unset, the native sender at its best.
 */
export const NATIVE_SEND_ENV = 'MSGBUS_NATIVE_SEND'
export const NATIVE_SEND_OFF = '0'
export const NATIVE_SEND_NO_RING = 'send'

/** The native sender and how it enters the kernel, or why there is none (for the start-up log). */
export type NativeSenderState = {sender: NativeSender; how: string; why?: undefined} | {sender?: undefined; how?: undefined; why: string}

let state: NativeSenderState | undefined

/** Loaded once, on first use; never throws: without it the writer uses Node's streams. */
export function nativeSender(): NativeSenderState {
  state ??= load()
  return state
}

function load(): NativeSenderState {
  const choice = process.env[NATIVE_SEND_ENV]
  if (choice === NATIVE_SEND_OFF) return {why: `${NATIVE_SEND_ENV}=${NATIVE_SEND_OFF}`}
  const {functions: sender, why} = nativeFunctions<NativeSender>(['sendMany', 'useRing'])
  if (!sender) return {why}
  const noRing = choice === NATIVE_SEND_NO_RING ? `${NATIVE_SEND_ENV}=${NATIVE_SEND_NO_RING}` : sender.useRing()
  return {sender, how: noRing === undefined ? 'io_uring, one system call for many sockets' : `send(2) a socket, many sockets a call: ${noRing}`}
}

/** Sockets a call at most (a flush slice is fewer, FLUSH_SLICE): no more than send-many.c's MAX_BUFFERS, as no call has more buffers than sockets. */
const BATCH = 64

/**
 * Sockets and their bytes gathered for one sendMany call. Consecutive
 * sockets handed the same Buffer (a message's frame, framed once) share one
 * entry of `buffers`. What a socket did not take, and any error, goes to its
 * own stream after the call, which queues the rest or fails the connection
 * (the caller hands over only sockets with nothing queued in Node, so those
 * bytes keep their order).
 */
export class NativeBatch {
  private readonly fds = new Int32Array(BATCH)
  private readonly which = new Int32Array(BATCH)
  private readonly results = new Int32Array(BATCH)
  private readonly buffers: Buffer[] = []
  private readonly sockets: Array<Socket | undefined> = []
  private count = 0

  constructor(private readonly sender: NativeSender) {}

  add(fd: number, socket: Socket, bytes: Buffer): void {
    if (this.buffers.length === 0 || this.buffers[this.buffers.length - 1] !== bytes) this.buffers.push(bytes)
    this.fds[this.count] = fd
    this.which[this.count] = this.buffers.length - 1
    this.sockets[this.count++] = socket
    if (this.count === BATCH) this.send()
  }

  send(): void {
    const count = this.count
    if (count === 0) return
    this.sender.sendMany(this.fds, this.buffers, this.which, count, this.results)
    for (let i = 0; i < count; i++) {
      const bytes = this.buffers[this.which[i] as number] as Buffer
      const sent = this.results[i] as number
      if (sent !== bytes.length) (this.sockets[i] as Socket).write(sent > 0 ? bytes.subarray(sent) : bytes)
      this.sockets[i] = undefined
    }

    this.buffers.length = 0
    this.count = 0
  }
}
