// The server side's TCP sockets, read from the kernel (/proc/net/tcp and
// tcp6), so the descriptor tests count what the server really holds.
import {readdirSync, readFileSync, readlinkSync} from 'node:fs'

const STATES: Record<string, string> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
}

/**
 * Connections whose local port is `port` (the server's side of them), by
 * state, counting only those a process still holds a descriptor for: a
 * socket the server has closed may linger in the kernel (FIN-WAIT, TIME-WAIT)
 * with no descriptor, and inode 0.
 */
export function serverSockets(port: number): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }

    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10) continue
      const localPort = Number.parseInt(fields[1].split(':').at(-1)!, 16)
      const state = STATES[fields[3]] ?? fields[3]
      if (localPort !== port || state === 'LISTEN' || fields[9] === '0') continue
      counts[state] = (counts[state] ?? 0) + 1
    }
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
