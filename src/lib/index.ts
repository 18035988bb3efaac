/**
 * msgbus as a library: run a bus in-process, or use its pieces (the bus
 * core, the multipart framing, the pattern filters), all from one import.
 * The same by part, each loading only what it needs: `msgbus/server`
 * (no undici), `msgbus/client`, `msgbus/protocol`.
 */
export * from './server/index.js'
export * from './client/index.js'
export * from './protocol/index.js'
export {streamLogger, type StreamLoggerOptions} from './server/ops/logger.js'
