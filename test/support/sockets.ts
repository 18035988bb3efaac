// The server side's TCP sockets, read from the kernel (/proc/net/tcp and
// tcp6), so the descriptor tests count what the server really holds.
import {readdirSync, readlinkSync} from 'node:fs'
import {tcpSockets} from '../../bench/proc.js'

/**
 * Connections whose local end is the server's `address`:`port` (the
 * server's side of them; a client bound to another loopback address may get
 * the same port number), by state, counting only those a process still
 * holds a descriptor for: a socket the server has closed may linger in the
 * kernel (FIN-WAIT, TIME-WAIT) with no descriptor, and inode 0.
 */
export function serverSockets(port: number, address = '127.0.0.1'): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const socket of tcpSockets()) {
    if (socket.localPort !== port || socket.localAddress !== address || socket.state === 'LISTEN' || socket.inode === 0) continue
    counts[socket.state] = (counts[socket.state] ?? 0) + 1
  }

  return counts
}

export function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((sum, count) => sum + count, 0)
}

/** How many descriptors a process holds open, and how many of them are sockets. */
export function descriptorsOf(pid: number): {all: number; sockets: number} {
  let all = 0
  let sockets = 0
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    all++
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++
    } catch {
      // closed meanwhile
    }
  }

  return {all, sockets}
}
