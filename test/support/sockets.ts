// The server side's TCP sockets, read from the kernel (/proc/net/tcp and
// tcp6), so the descriptor tests count what the server really holds.
import assert from 'node:assert/strict'
import {readdirSync, readlinkSync} from 'node:fs'
import type {BusServer} from '../../src/lib/index.js'
import {tcpSockets, unread} from '../../tools/proc.js'
import {portOf, request, until} from './harness.js'

/**
 * Connections whose local end is the server's `address`:`port` (the
 * server's side of them; a client bound to another loopback address may get
 * the same port number), by state, counting only those a process still
 * holds a descriptor for: a socket the server has closed may linger in the
 * kernel (FIN-WAIT, TIME-WAIT) with no descriptor, and inode 0.
 */
export function serverSockets(port: number, address = '127.0.0.1'): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const socket of tcpSockets(port)) {
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

// What waits unread in the socket queues between a server and its clients, either way.
export {unread, unreceived} from '../../tools/proc.js'

/**
 * Waits until the bus in this process has read every byte sent to it, then
 * makes one more request of it and lets this turn of the event loop end:
 * whatever the server was going to answer to what it read, it has written,
 * and this process has received. For "no answer (yet)": the alternative is a
 * guessed while, which a busy machine outlasts.
 */
export async function serverCaughtUp(server: BusServer): Promise<void> {
  await until(() => unread(portOf(server)) === 0, () => `the server to read what was sent (${unread(portOf(server))} bytes unread)`)
  const reply = await request(`${server.url()}/msgbus/`, {method: 'HEAD'})
  assert.equal(reply.status, 200, 'the server answers meanwhile')
  await new Promise((resolve) => setImmediate(resolve))
}
