/** `msgbus/client`: publish and subscribe over HTTP (with undici), and read any multipart stream. */
export {resolveTarget, DEFAULT_BASE_URL, TargetError, type ClientOptions, type Target} from './target.js'
export {ClientError, isRetryable, type ClientErrorCode} from './http.js'
export {publish, publishAll, DEFAULT_TYPE, type PublishOptions, type Published, type FilePart} from './publish.js'
export {PipelinedPublisher, MESSAGE_OVERHEAD, type PipelinedPublisherOptions, type PublisherStats, type PublisherEvents} from './pipelined-publisher.js'
export {subscribe, Subscription, type SubscribeOptions, type SubscriptionEvents, type GapInfo, type LossInfo, type Losses} from './subscribe.js'
export {MultipartStream, type MultipartStreamOptions} from './multipart-stream.js'
export {partToMessage, type ReceivedMessage} from './message.js'
export {MsgbusError, MSGBUS_ERROR_CODES, type MsgbusErrorCode} from '../util/errors.js'
