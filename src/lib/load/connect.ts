import {connect as netConnect, isIPv4, type Socket} from 'node:net'
import {connect as tlsConnect} from 'node:tls'
import type {Target} from '../client/target.js'
import {batchReader, type BatchReader} from './batch-reader.js'

export interface ConnectOptions {
  ca?: string | Buffer
  insecure?: boolean
  localAddress?: string
}

/**
 * Load tools open thousands of loopback connections; one source address has
 * ~28,000 ephemeral ports here and connect() slows past half of them, so
 * connection i to a loopback target comes from 127.0.0.(1 + i / 4000).
 */
export function loopbackSource(target: Target, index: number): {host?: string; localAddress?: string} {
  const host = target.url.hostname
  if (host !== 'localhost' && !(isIPv4(host) && host.startsWith('127.'))) return {}
  return {host: host === 'localhost' ? '127.0.0.1' : host, localAddress: `127.0.0.${1 + Math.floor(index / 4000)}`}
}

/** One read buffer for every plain-TCP socket of the process: reads are handled one at a time, synchronously. */
const SHARED_READ_BUFFER = Buffer.alloc(64 * 1024)

/**
 * A raw TCP (or TLS) connection to the target's origin, with Nagle off.
 * `onData` gets what arrives, data[0, end); on plain TCP `data` is one
 * shared buffer, valid only during the call (no allocation per read, not
 * even a view), so copy whatever must outlive it. `batched`: on plain TCP,
 * read by the process's native batch reader when it is built (test-sub's
 * thousands of subscriptions), else by Node.
 */
export function openSocket(target: Target, options: ConnectOptions & {host?: string; batched?: boolean; onData: (data: Buffer, end: number) => void}): Socket {
  const {url} = target
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
  const host = options.host ?? url.hostname.replace(/^\[|\]$/g, '')
  const tls = url.protocol === 'https:'
  const {onData} = options
  const batch = options.batched && !tls ? batchReader() : undefined
  if (batch) return batchedSocket(batch, {host, port, localAddress: options.localAddress}, onData)
  const callback = (length: number): boolean => {
    onData(SHARED_READ_BUFFER, length)
    return true
  }
  const onread = tls ? undefined : {buffer: SHARED_READ_BUFFER, callback}
  const tcp = netConnect({host, port, localAddress: options.localAddress, onread})
  tcp.setNoDelay(true)
  if (!tls) return tcp
  const servername = isIPv4(host) || host.includes(':') ? undefined : host
  const socket = tlsConnect({socket: tcp, servername, ca: options.ca, rejectUnauthorized: !options.insecure})
  socket.on('data', (data: Buffer) => onData(data, data.length))
  return socket
}

/** A socket Node never reads: paused from the start, and handed to the batch reader once connected (or, if it cannot take it, to Node after all). */
function batchedSocket(batch: BatchReader, at: {host: string; port: number; localAddress?: string}, onData: (data: Buffer, end: number) => void): Socket {
  const tcp = netConnect(at)
  tcp.setNoDelay(true)
  tcp.pause()
  tcp.once('connect', () => {
    if (batch.add(tcp, (data, start, end) => onData(data.subarray(start, end), end - start))) return
    tcp.on('data', (data: Buffer) => onData(data, data.length))
    tcp.resume()
  })
  return tcp
}

/** The request target and Host header for a raw HTTP/1.1 request, and any other headers given. */
export function requestLine(method: string, target: Target, headers: Record<string, string> = {}): string {
  const {url} = target
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n`
  if (target.authorization) head += `Authorization: ${target.authorization}\r\n`
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
  return head
}
