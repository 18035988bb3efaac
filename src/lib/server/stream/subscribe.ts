import type {IncomingMessage, ServerResponse} from 'node:http'
import {STATUS_CODES} from 'node:http'
import {bothFilters, compileFilter, type FilterSpec, type MessageFilter} from '../../protocol/filter.js'
import {PatternListError} from '../../protocol/pattern.js'
import type {StreamEncoder} from '../../protocol/stream-encoder.js'
import {positionParam} from '../../protocol/position.js'
import type {Bus} from '../../bus/bus.js'
import type {StreamEncoders} from '../../protocol/formats.js'
import type {Viewer} from '../pages/viewer.js'
import {HttpError} from '../http/http-error.js'
import {defaultFraming, framingParam, type FramingPolicy} from './framing.js'
import {chooseRepresentation, type Representation} from './negotiate.js'
import {resolve, resumeHeaders, resumeRequest, openingGap} from './resume.js'
import type {Streams} from './streams.js'

/** What a subscription needs: the bus, the encoders, the limits on subscriptions, and where streams go. */
export interface SubscribeContext {
  readonly bus: Bus
  readonly encoders: StreamEncoders
  /** `--framing`: how multipart streams are framed when the URL does not say. */
  readonly framing: FramingPolicy
  /** Most subscriptions at once (0: no limit). */
  readonly maxSubscribers: number
  /** Most channels with subscribers at once (0: no limit). */
  readonly maxChannels: number
  /** The page for browsers that navigate to a bus URL, or why it could not be read. */
  readonly viewer: Viewer | Error
  readonly streams: Streams
  readonly serverHeader: string
}

/** An `<img>` (or CSS image) loading the stream. */
function isImageRequest(req: IncomingMessage): boolean {
  return req.headers['sec-fetch-dest']?.toLowerCase() === 'image'
}

function isHttp11(req: IncomingMessage): boolean {
  return req.httpVersionMajor > 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1)
}

/**
 * The encoder a stream is written with. A multipart stream's framing is the
 * URL's `?framing=` when given; else an `<img>` gets the image framing; else
 * the server's `--framing` (under `auto`, the 2007 framing for the 2007
 * clients, known by their User-Agent).
 */
function encoderFor(ctx: SubscribeContext, req: IncomingMessage, representation: Exclude<Representation, 'html'>, params: URLSearchParams): StreamEncoder {
  const asked = framingParam(params.get('framing'))
  if (representation !== 'multipart') return ctx.encoders[representation]
  if (asked === undefined && isImageRequest(req)) return ctx.encoders.image
  const framing = asked ?? defaultFraming(ctx.framing, req.headers)
  return framing === '2007' ? ctx.encoders.multipart2007 : ctx.encoders.multipart
}

/**
 * The stream's headers, for GET and HEAD alike. A poll ends soon, and its
 * connection closes with it: it says so (`Connection: close`, besides the
 * chunking that marks its end on HTTP/1.1), or a client that keeps
 * connections for its next requests would send one on it and find it gone.
 */
function streamHeaders(ctx: SubscribeContext, cors: Record<string, string>, encoder: StreamEncoder, chunked: boolean, poll: boolean): Record<string, string> {
  return {
    Server: ctx.serverHeader,
    'Content-Type': encoder.contentType,
    // Proxies (nginx's X-Accel-Buffering) must pass each message on as it comes, not batch or cache the stream.
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
    // What a message carries never runs as this origin, even where a browser renders the stream itself.
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "sandbox; frame-ancestors 'none'",
    'X-Frame-Options': 'DENY',
    ...cors,
    Vary: negotiatedVary(cors),
    ...(chunked ? {'Transfer-Encoding': 'chunked'} : {}),
    ...(!chunked || poll ? {Connection: 'close'} : {}),
  }
}

/**
 * What a bus URL's answer depends on: the format is negotiated, and CORS may
 * echo the origin. The User-Agent is not named although it picks a
 * multipart stream's framing (framing.ts): an endless stream is never
 * complete, so no cache ever stores one to hand to another client.
 */
function negotiatedVary(cors: Record<string, string>): string {
  return cors.Vary ? `${cors.Vary}, Accept, Sec-Fetch-Dest` : 'Accept, Sec-Fetch-Dest'
}

function rawHead(headers: Record<string, string>): string {
  let head = `HTTP/1.1 200 ${STATUS_CODES[200]}\r\nDate: ${new Date().toUTCString()}\r\n`
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
  return head + '\r\n'
}

/** The subscription's `?type=` and `?sender=` filters; a list over the limits (pattern.ts) is a 400. */
function filterOf(spec: FilterSpec): MessageFilter | undefined {
  try {
    return compileFilter(spec)
  } catch (error) {
    if (error instanceof PatternListError) throw new HttpError(400, error.message, {}, false, {cause: error})
    throw error
  }
}

/**
 * GET (or HEAD) on a bus URL. The connection is taken over from Node's HTTP
 * response: the head and every message are written straight to the socket,
 * so a message is framed once per format and the same bytes go to every
 * subscriber of that format.
 */
export function subscribe(
  ctx: SubscribeContext,
  req: IncomingMessage,
  res: ServerResponse,
  channel: string,
  query: string,
  cors: Record<string, string>,
  /** The channels the ACL lets this subscriber see (serve --acl). */
  permitted?: MessageFilter,
): void {
  const params = new URLSearchParams(query)
  const representation = chooseRepresentation(req.headers, params.get('format'))
  // The page, whatever its filters: it subscribes itself, and shows why the server refuses what it asks for.
  if (representation === 'html') {
    if (ctx.viewer instanceof Error) throw new HttpError(404, 'the viewer page is not installed; ask for a stream with ?format=')
    ctx.viewer.serve(req, res, {Vary: negotiatedVary(cors)})
    return
  }

  const filterText = {type: params.getAll('type').join(','), sender: params.getAll('sender').join(',')}
  const accepts = bothFilters(permitted, filterOf(filterText))
  const encoder = encoderFor(ctx, req, representation, params)

  const {position, poll, gapParts} = resumeRequest(req, params)
  const {maxSubscribers} = ctx
  // A poll is not a subscriber: it reads the history and ends.
  if (!poll && maxSubscribers > 0 && ctx.bus.subscriberCount >= maxSubscribers) {
    throw new HttpError(503, `too many subscribers (the limit is ${maxSubscribers})`, {'Retry-After': '5'})
  }

  const {maxChannels} = ctx
  if (!poll && maxChannels > 0 && channel !== '' && !ctx.bus.hasSubscribers(channel) && ctx.bus.channelCount >= maxChannels) {
    throw new HttpError(503, `too many channels (the limit is ${maxChannels})`, {'Retry-After': '5'})
  }

  const chunked = isHttp11(req)
  const resolution = resolve(ctx.bus.log, position)
  const headers = {...streamHeaders(ctx, cors, encoder, chunked, poll), ...resumeHeaders(resolution)}
  if (req.method === 'HEAD') {
    res.writeHead(200, headers)
    res.end()
    return
  }

  const details = [
    representation !== 'multipart' && `format=${representation}`,
    encoder === ctx.encoders.multipart2007 && 'framing=2007',
    filterText.type && `type=${filterText.type}`,
    filterText.sender && `sender=${filterText.sender}`,
    position && `since=${positionParam(position)}`,
    resolution.gap && `gap=${resolution.gap}`,
    poll && 'poll',
  ].filter(Boolean)
  ctx.streams.open(req, res, {
    channel,
    chunked,
    accepts,
    encoder,
    head: rawHead(headers),
    details: details.join(' '),
    gapEvents: encoder.format !== 'multipart' || gapParts,
    replay: {start: resolution.start, from: resolution.from, after: position?.kind === 'id' ? position.id : undefined, gap: openingGap(resolution, position), through: resolution.through},
    poll,
  })
}
