/**
 * msgbus as a library: run a bus in-process, or use its pieces (the bus
 * core, the multipart framing, the pattern filters).
 */
export {createBus, BusServer, type Listening, type ServerCounters} from './server/bus-server.js'
export type {BusServerOptions} from './server/options.js'
export type {SlowPolicy} from './server/socket-writer.js'
export {streamLogger, silentLogger, LogLevel, type Logger} from './server/logger.js'
export {Bus, type Delivery, type BusCounters} from './bus/bus.js'
export type {Message, MessageInput, Subscriber} from './bus/message.js'
export {MessageIdGenerator, compareMessageIds} from './bus/message-id.js'
export {MultipartEncoder, makeBoundary, type Frame} from './protocol/multipart-encoder.js'
export {compilePatternList, type Matcher} from './protocol/pattern.js'
export {compileFilter, type FilterSpec, type MessageFilter} from './protocol/filter.js'
export {decodeChannel, channelPath, BUS_PREFIX, ChannelError} from './protocol/channel.js'
export {parseMediaType, type MediaType} from './protocol/media-type.js'
export {parseSize, formatSize} from './util/size.js'
export {VERSION} from './version.js'
export * from './client/index.js'
export {MultipartParser, MultipartError, boundaryOf, type Part, type MultipartLimits} from './protocol/multipart-parser.js'
export {toJsonMessage, isTextualType, isTextBody, type JsonMessage, type MessageLike} from './protocol/json-message.js'
