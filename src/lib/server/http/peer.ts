import type {Socket} from 'node:net'

const ADDRESS = Symbol('msgbus.address')
const PEER = Symbol('msgbus.peer')
type Named = Socket & {[ADDRESS]?: string; [PEER]?: string}

/**
 * The client's address; IPv4 clients of a dual-stack listener as plain IPv4,
 * so limits count them as one. Kept on the socket once known: a socket whose
 * peer has reset it no longer knows its address, and would count as "?".
 */
export function addressOf(socket: Socket): string {
  const named = socket as Named
  if (named[ADDRESS] !== undefined) return named[ADDRESS]
  const address = socket.remoteAddress
  if (address === undefined) return '?'
  return (named[ADDRESS] = address.replace(/^::ffff:(?=\d+\.)/, ''))
}

/** The client's address and port, for the log; kept on the socket as addressOf is. */
export function peerOf(socket: Socket): string {
  const named = socket as Named
  if (named[PEER] !== undefined) return named[PEER]
  const address = addressOf(socket)
  if (address === '?') return '?'
  return (named[PEER] = address.includes(':') ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`)
}

/** A channel as the log names it. */
export function channelLabel(channel: string): string {
  return channel === '' ? '(every channel)' : channel
}
