/**
 * `msgbus/server`: the server core, run in-process (`createBus`), and the
 * bus behind it. It loads neither the client (undici) nor chalk nor oclif:
 * streamLogger, coloured by chalk, is exported by `msgbus` alone; a Logger
 * is two methods (ops/log.ts).
 */
export {createBus, BusServer, type Listening} from './bus-server.js'
export type {ServerCounters} from './ops/counters.js'
export type {Readiness, HealthCheck, CheckResult} from './ops/health.js'
export type {BusServerOptions} from './options.js'
export type {SlowPolicy} from './stream/socket-writer.js'
export type {FramingPolicy} from './stream/framing.js'
export {silentLogger, LogLevel, type Logger, type LogFields, type LogFormat} from './ops/log.js'
export {ACCESS_LOG_LIMITS, type AccessLogLimits} from './ops/access-log.js'
export {AclError} from './access/acl.js'
export {CorsOptionError} from './access/cors.js'
export {Bus, FAN_OUT_SLICE, type BusOptions, type Delivery, type BusCounters} from '../bus/bus.js'
export type {Message, MessageInput, Subscriber} from '../bus/message.js'
export {parseSize, formatSize} from '../util/size.js'
export {MsgbusError, MSGBUS_ERROR_CODES, type MsgbusErrorCode} from '../util/errors.js'
export {VERSION} from '../version.js'
