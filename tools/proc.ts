/** Reading another process's CPU time and memory from Linux's /proc. */
import {execFileSync} from 'node:child_process'
import {readFileSync} from 'node:fs'

let clockTicks: number | undefined

/** Clock ticks per second (`getconf CLK_TCK`, normally 100): the unit of utime and stime in /proc/<pid>/stat. */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], {encoding: 'utf8'}).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }

  return clockTicks
}

/** utime and stime of the whole process (every thread), in seconds. */
export function cpuTimes(pid: number): {user: number; system: number} {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return {user: Number(fields[11]) / clkTck(), system: Number(fields[12]) / clkTck()}
}

/** utime + stime of the whole process (every thread), in seconds. */
export function cpuSeconds(pid: number): number {
  const {user, system} = cpuTimes(pid)
  return user + system
}

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM, ...), or NaN. */
export function statusBytes(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1')
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)
  return match ? Number(match[1]) * 1024 : Number.NaN
}

export interface MachineTimes {
  /** Seconds of CPU time spent busy, all CPUs together (user, nice, system, irq, softirq, steal). */
  busy: number
  /** Of which in interrupts and softirqs (loopback TCP delivery runs there, charged to no process). */
  irq: number
  idle: number
}

/** System-wide CPU times from the first line of /proc/stat. */
export function machineTimes(): MachineTimes {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number) as number[]
  const tick = clkTck()
  return {
    busy: (user! + nice! + system! + irq! + softirq! + steal!) / tick,
    irq: (irq! + softirq!) / tick,
    idle: (idle! + iowait!) / tick,
  }
}

/**
 * utime + stime of this process's children that have ended and been waited
 * for (cutime + cstime of /proc/self/stat), in seconds. Node waits for a
 * child as it exits, so the difference across one child's life, with no
 * other child ending meanwhile, is that child's whole CPU time.
 */
export function endedChildrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'latin1')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // cutime is field 16, cstime field 17.
  return (Number(fields[13]) + Number(fields[14])) / clkTck()
}

/** TCP states as /proc/net/tcp numbers them. */
const TCP_STATES: Record<string, string> = {
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

export interface TcpSocket {
  localAddress: string
  localPort: number
  remoteAddress: string
  remotePort: number
  /** ESTABLISHED, CLOSE_WAIT, FIN_WAIT2... */
  state: string
  /** The socket's inode; 0 when no process holds a descriptor for it (a closed socket the kernel still winds down). */
  inode: number
  /** Bytes in its send queue (written, not yet acknowledged by the peer). */
  txQueue: number
  /** Bytes in its receive queue (arrived, not yet read by the process that holds it). */
  rxQueue: number
}

/** An address as /proc/net/tcp{,6} writes it: IPv4 as the hex of its 32 bits in host (little-endian) order (127.0.0.1 is 0100007F). */
function procAddress(hex: string): string {
  if (hex.length === 8) return (hex.match(/../g) ?? []).reverse().map((byte) => Number.parseInt(byte, 16)).join('.')
  return hex
}

/**
 * Every TCP socket of this machine's network namespace (IPv4 and IPv6), from
 * /proc/net/tcp and tcp6; with `port`, only those with that port at either
 * end (found before the lines are parsed: with tens of thousands of sockets
 * on the machine, parsing them all costs hundreds of ms).
 */
export function tcpSockets(port?: number): TcpSocket[] {
  const sockets: TcpSocket[] = []
  const needle = port === undefined ? undefined : `:${port.toString(16).toUpperCase().padStart(4, '0')} `
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'latin1')
    } catch {
      continue
    }

    // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode"
    for (const line of text.split('\n').slice(1)) {
      if (needle !== undefined && !line.includes(needle)) continue
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10) continue
      const [localAddress, localPort] = fields[1].split(':')
      const [remoteAddress, remotePort] = fields[2].split(':')
      const [txQueue, rxQueue] = fields[4].split(':')
      sockets.push({
        localAddress: procAddress(localAddress),
        localPort: Number.parseInt(localPort, 16),
        remoteAddress: procAddress(remoteAddress),
        remotePort: Number.parseInt(remotePort, 16),
        state: TCP_STATES[fields[3]] ?? fields[3],
        inode: Number(fields[9]),
        txQueue: Number.parseInt(txQueue, 16),
        rxQueue: Number.parseInt(rxQueue, 16),
      })
    }
  }

  return sockets
}

/**
 * TCP connections in state ESTABLISHED whose local end is `address`:`port`
 * (the server's side of each; IPv4). The address matters: a client bound to
 * 127.0.0.2 may well get the server's port number as its own.
 */
export function establishedOn(port: number, address = '127.0.0.1'): number {
  return tcpSockets(port).filter((socket) => socket.localPort === port && socket.localAddress === address && socket.state === 'ESTABLISHED').length
}

/**
 * Bytes sent to the server on `address`:`port` that it has not read yet: what
 * waits in its sockets' receive queues and in its clients' send queues.
 */
export function unread(port: number, address = '127.0.0.1'): number {
  return queued(port, address, 'rxQueue', 'txQueue')
}

/**
 * Bytes the server on `address`:`port` has handed to the kernel that its
 * clients have not read yet: what waits in its sockets' send queues and in
 * its clients' receive queues. 0 (with nothing left in the server's own
 * buffers) means every client has read all the server wrote to it.
 */
export function unreceived(port: number, address = '127.0.0.1'): number {
  return queued(port, address, 'txQueue', 'rxQueue')
}

function queued(port: number, address: string, server: 'rxQueue' | 'txQueue', client: 'rxQueue' | 'txQueue'): number {
  let bytes = 0
  for (const socket of tcpSockets(port)) {
    if (socket.localPort === port && socket.localAddress === address && socket.state !== 'LISTEN') bytes += socket[server]
    else if (socket.remotePort === port && socket.remoteAddress === address) bytes += socket[client]
  }

  return bytes
}

// ---------------------------------------------------------------- msgbus serve's own figures

/**
 * The key=value pairs of one `msgbus serve --stats` line (`... stats
 * subscribers=N ... rss=12.3MiB heap=4.5MiB loop-p99=1.2ms ...`) as numbers,
 * keyed as printed, units dropped (rss and heap in MiB, loop-* in ms);
 * undefined when the line is not a stats line.
 */
export function parseStatsLine(line: string): Record<string, number> | undefined {
  const match = / stats ((?:\S+=\S+ ?)+)$/.exec(line)
  if (!match) return undefined
  const values: Record<string, number> = {}
  for (const pair of match[1]!.trim().split(' ')) {
    const at = pair.indexOf('=')
    values[pair.slice(0, at)] = Number.parseFloat(pair.slice(at + 1))
  }

  return values
}

/**
 * Node options for a `msgbus serve` process that add a live-heap probe: on
 * SIGUSR2 it runs a full garbage collection, then writes one line to stderr,
 * `gc-probe heap=B heapTotal=B rss=B external=B arrayBuffers=B gc-ms=MS`
 * (process.memoryUsage() in bytes; how long the collection took). heapUsed as
 * the stats line shows it includes whatever garbage the last collection left;
 * after a full collection it is what the server holds, so a leak shows as
 * growth of a few MiB instead of hiding in the saw-tooth. Measurement only:
 * the server runs as it would without it, but for one full collection (tens
 * of ms with 10,000 subscribers) per probe.
 */
export const GC_PROBE_NODE_ARGS = [
  '--expose-gc',
  '--import',
  'data:text/javascript,' +
    encodeURIComponent(
      "process.on('SIGUSR2',()=>{const t=performance.now();globalThis.gc();const ms=performance.now()-t;const m=process.memoryUsage();" +
        "process.stderr.write('gc-probe heap='+m.heapUsed+' heapTotal='+m.heapTotal+' rss='+m.rss+' external='+m.external+' arrayBuffers='+m.arrayBuffers+' gc-ms='+ms.toFixed(1)+'\\n')})",
    ),
]

export interface GcProbe {
  /** heapUsed after a full collection, bytes. */
  heap: number
  /** heapTotal then: what V8 has reserved for its heap. */
  heapTotal: number
  rss: number
  external: number
  arrayBuffers: number
  /** How long the full collection took (it holds up the server's event loop that long). */
  gcMs: number
}

/** A `gc-probe ...` line (see GC_PROBE_NODE_ARGS), or undefined. */
export function parseGcProbe(line: string): GcProbe | undefined {
  const match = /^gc-probe heap=(\d+) heapTotal=(\d+) rss=(\d+) external=(\d+) arrayBuffers=(\d+) gc-ms=([\d.]+)$/.exec(line.trim())
  if (!match) return undefined
  const [heap, heapTotal, rss, external, arrayBuffers, gcMs] = match.slice(1).map(Number) as number[]
  return {heap: heap!, heapTotal: heapTotal!, rss: rss!, external: external!, arrayBuffers: arrayBuffers!, gcMs: gcMs!}
}

/** The pids of a process's children (a cluster's workers, nginx's worker), from /proc. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}
