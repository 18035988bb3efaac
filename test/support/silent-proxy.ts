// A TCP proxy that leaves chosen connections unanswered: what a client meets
// when the cluster's primary hands its connection to a worker that is dying.
import {once} from 'node:events'
import {connect, createServer, type Server, type Socket} from 'node:net'

const servers = new Set<Server>()
const sockets = new Set<Socket>()

/**
 * A TCP proxy on 127.0.0.1 to the port `upstream`, except for the
 * connections (counted from 0) that `silent` picks: those it accepts and
 * reads, and never answers, as the cluster's primary does with a connection
 * it handed to a worker that is dying. closeSilentProxies() ends them all.
 */
export async function silentProxy(upstream: number, silent: (index: number) => boolean): Promise<{url: string; connections: () => number}> {
  let connections = 0
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    if (silent(connections++)) {
      socket.resume()
      return
    }

    const onward = connect(upstream, '127.0.0.1')
    sockets.add(onward)
    onward.on('error', () => {})
    socket.pipe(onward).pipe(socket)
    // The server's end of a stream is the client's, whether it closed or was reset.
    onward.on('close', () => socket.end())
    socket.on('close', () => onward.destroy())
  })
  servers.add(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {url: `http://127.0.0.1:${(server.address() as {port: number}).port}`, connections: () => connections}
}

/** Closes every silent proxy and the connections through them (for afterEach). */
export function closeSilentProxies(): void {
  for (const server of servers) server.close()
  servers.clear()
  for (const socket of sockets) socket.destroy()
  sockets.clear()
}
