import type {IncomingMessage, ServerResponse} from 'node:http'
import type {Socket} from 'node:net'
// Node's own helper for releasing a connection's HTTP parser, as its 'upgrade' handling does.
// @ts-expect-error: an internal module of Node's, with no type declarations.
import {freeParser} from '_http_common'

/** Node's HTTP server's listeners on a connection: they hold the parser, the request and the response. */
const HTTP_LISTENER = /^(?:bound )?(?:socketOn|onSocket)/

/**
 * Takes a connection away from Node's HTTP server once it has become a
 * subscription stream, the way Node itself lets go of an upgraded one: its
 * listeners come off, the parser goes back to the pool, and the request and
 * response can be collected. About 3 KiB less per subscription. From then on
 * the connection is ours alone: a byte from the client closes it (a request
 * pipelined behind a subscription can never be answered), and so does its
 * end.
 */
export function takeOver(socket: Socket, req: IncomingMessage, res: ServerResponse): void {
  // Not while the parser is still running the read that brought the request:
  // it calls back into JavaScript once per request, header block and body
  // piece, and process.nextTick callbacks run in between, with requests
  // pipelined behind this one still to parse. An immediate runs once the
  // whole read has been parsed.
  setImmediate(() => {
    if (socket.destroyed) return
    for (const event of ['data', 'end', 'close', 'drain', 'error', 'timeout', 'resume', 'pause']) {
      for (const listener of socket.listeners(event)) {
        if (HTTP_LISTENER.test((listener as {name: string}).name)) socket.off(event, listener as () => void)
      }
    }

    const parser = (socket as Socket & {parser?: {_consumed?: boolean; unconsume(): void; finish(): void}}).parser
    if (parser) {
      if (parser._consumed) parser.unconsume()
      parser.finish()
      freeParser(parser, req, socket)
    }

    res.detachSocket(socket)
    ownListeners(socket)
  })
}

/**
 * The stream's own listeners, made here rather than in takeOver: closures
 * made there would share its context, which holds the request and the
 * response, and keep them for the life of the connection.
 */
function ownListeners(socket: Socket): void {
  socket.on('error', () => {})
  socket.on('end', () => socket.end())
  socket.on('data', () => socket.destroy())
  socket.resume()
}
