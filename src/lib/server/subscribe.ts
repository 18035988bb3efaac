import type {IncomingMessage, ServerResponse} from 'node:http'
import {STATUS_CODES} from 'node:http'
import {compileFilter} from '../protocol/filter.js'
import {channelLabel, peerOf, type ServerContext} from './context.js'
import {HttpError} from './http-error.js'
import {LogLevel} from './logger.js'
import {HttpSubscription} from './subscription.js'
import {takeOver} from './takeover.js'

function isHttp11(req: IncomingMessage): boolean {
  return req.httpVersionMajor > 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1)
}

/** The stream's headers, for GET and HEAD alike. */
function streamHeaders(ctx: ServerContext, chunked: boolean): Record<string, string> {
  return {
    Server: ctx.serverHeader,
    'Content-Type': ctx.encoder.contentType,
    'Cache-Control': 'no-cache',
    ...(chunked ? {'Transfer-Encoding': 'chunked'} : {Connection: 'close'}),
  }
}

function rawHead(headers: Record<string, string>): string {
  let head = `HTTP/1.1 200 ${STATUS_CODES[200]}\r\nDate: ${new Date().toUTCString()}\r\n`
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
  return head + '\r\n'
}

/**
 * GET (or HEAD) on a bus URL. The connection is taken over from Node's HTTP
 * response: the head and every part are written straight to the socket, so a
 * message is framed once and the same bytes go to every subscriber.
 */
export function subscribe(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, channel: string, query: string): void {
  const params = new URLSearchParams(query)
  const filterText = {type: params.getAll('type').join(','), sender: params.getAll('sender').join(',')}
  const accepts = compileFilter(filterText)
  const {maxSubscribers} = ctx.options
  if (maxSubscribers > 0 && ctx.bus.subscriberCount >= maxSubscribers) {
    throw new HttpError(503, `too many subscribers (the limit is ${maxSubscribers})`, {'Retry-After': '5'})
  }

  const chunked = isHttp11(req)
  const headers = streamHeaders(ctx, chunked)
  if (req.method === 'HEAD') {
    res.writeHead(200, headers)
    res.end()
    return
  }

  const socket = req.socket
  const peer = peerOf(socket)
  const subscription = new HttpSubscription(socket, channel, chunked, accepts, ctx.encoder, ctx.writer, peer)
  ctx.streaming.add(socket)
  socket.setNoDelay(true)
  subscription.start(rawHead(headers))
  takeOver(socket, req, res)
  ctx.bus.subscribe(subscription)
  ctx.subscriptions.add(subscription)
  const filters = [filterText.type && `type=${filterText.type}`, filterText.sender && `sender=${filterText.sender}`].filter(Boolean)
  const described = `${peer} ${channelLabel(channel)}${filters.length ? ` ${filters.join(' ')}` : ''}`
  ctx.logger.log(LogLevel.Subscriptions, 'subscribe', described)
  socket.once('close', () => {
    ctx.bus.unsubscribe(subscription)
    ctx.subscriptions.delete(subscription)
    ctx.logger.log(LogLevel.Subscriptions, 'unsubscribe', `${described} after ${subscription.received} messages`)
  })
}
