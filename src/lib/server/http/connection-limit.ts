import type {Socket} from 'node:net'
import {addressOf} from './peer.js'

/** Open connections per client address, for `--max-connections-per-ip`. */
export class ConnectionLimit {
  private readonly open = new Map<string, number>()

  constructor(readonly max: number) {}

  /** Counts a new connection until it closes; false (and not counted) when its address already has `max` open. */
  admit(socket: Socket): boolean {
    const address = addressOf(socket)
    const count = this.open.get(address) ?? 0
    if (count >= this.max) return false
    this.open.set(address, count + 1)
    socket.once('close', () => {
      const left = this.open.get(address)! - 1
      if (left === 0) this.open.delete(address)
      else this.open.set(address, left)
    })
    return true
  }
}
