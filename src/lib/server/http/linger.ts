import type {Socket} from 'node:net'

/**
 * How long a connection we are closing may still be read (and what comes
 * ignored), so that the client reads our last answer rather than a reset.
 */
export const LINGER_MS = 2000

/**
 * Sends a connection's last bytes and shuts our side (FIN), then destroys it
 * once the linger is over, whatever the client does: a client that never
 * closes its end would otherwise hold the descriptor in FIN-WAIT-2 for as
 * long as it likes.
 */
export function endAndLinger(socket: Socket, bytes: string | Buffer, lingerMs = LINGER_MS): void {
  socket.end(bytes)
  if (socket.destroyed) return
  const timer = setTimeout(() => socket.destroy(), lingerMs)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
}
