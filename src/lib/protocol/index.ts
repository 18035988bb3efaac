/**
 * `msgbus/protocol`: the wire protocol's pieces, without a server or a
 * client: the stream encoders and the multipart parser, pattern lists and
 * filters, channel names, media types, message ids.
 */
export {MultipartEncoder, makeBoundary, MULTIPART_FRAMINGS, type MultipartFraming} from './multipart-encoder.js'
export {SseEncoder} from './sse-encoder.js'
export {NdjsonEncoder} from './ndjson-encoder.js'
export {RawEncoder} from './raw-encoder.js'
export {createEncoders, type StreamEncoders} from './formats.js'
export type {Frame, StreamEncoder, StreamFormat} from './stream-encoder.js'
export {MultipartParser, MultipartError, boundaryOf, type Part, type MultipartLimits} from './multipart-parser.js'
export {compilePatternList, PatternList, PatternListError, MAX_PATTERNS, MAX_PATTERN_CHARS, MAX_LIST_CHARS, type Matcher, type PatternOptions} from './pattern.js'
export {compileFilter, type FilterSpec, type MessageFilter} from './filter.js'
export {decodeChannel, channelPath, BUS_PREFIX, ChannelError} from './channel.js'
export {parseMediaType, MAX_MEDIA_NAME_CHARS, type MediaType} from './media-type.js'
export {toJsonMessage, isTextualType, isTextBody, type JsonMessage, type MessageLike} from './json-message.js'
export {MessageIdGenerator, compareMessageIds, isMessageId} from '../bus/message-id.js'
export {parsePosition, positionParam, type Position} from './position.js'
export {gapJson, readGap, GAP_REASONS, type Gap, type GapReason} from './gap.js'
export {disconnectJson, readDisconnect, DISCONNECT_REASONS, type Disconnect, type DisconnectReason} from './disconnect.js'
export type {Message, MessageInput} from '../bus/message.js'
export {MsgbusError, MSGBUS_ERROR_CODES, type MsgbusErrorCode} from '../util/errors.js'
