/**
 * streamLogger, coloured by chalk. The server core imports log.ts, which
 * has the rest and no chalk, so that `msgbus/server` does not load chalk.
 */
import {chalkStderr, type ChalkInstance} from 'chalk'
import type {LogFields, LogFormat, Logger} from './log.js'

export {LogLevel, silentLogger, LOG_FORMATS, type LogFields, type LogFormat, type Logger} from './log.js'

const EVENT_COLOURS: Record<string, (c: ChalkInstance) => ChalkInstance> = {
  listen: (c) => c.green,
  subscribe: (c) => c.cyan,
  unsubscribe: (c) => c.cyan.dim,
  publish: (c) => c.magenta,
  request: (c) => c.blue,
  refused: (c) => c.yellow,
  stop: (c) => c.yellow,
}

/** The names every JSON line has; a field of the same name does not replace them. */
const CORE = new Set(['time', 'level', 'event', 'msg'])

/** One JSON line: `{"time","level","event","msg",...fields}`. */
export function jsonLine(time: string, level: 'info' | 'warn', event: string, detail: string, fields: LogFields = {}): string {
  const line: LogFields = {time, level, event, msg: detail}
  for (const [name, value] of Object.entries(fields)) if (!CORE.has(name) && value !== undefined) line[name] = value
  return `${JSON.stringify(line)}\n`
}

/** Streams whose writes failed, and those watched for it (one listener a stream, however many loggers write to it). */
const broken = new WeakSet<NodeJS.WritableStream>()
const watched = new WeakSet<NodeJS.WritableStream>()

/**
 * A log that can no longer be written (`msgbus serve 2>&1 | head`, a closed
 * terminal: EPIPE) must not stop the server: unhandled, that error would end
 * the process. Its lines are lost from then on, with nowhere to say so.
 */
function watchForBreak(stream: NodeJS.WritableStream): void {
  if (watched.has(stream)) return
  watched.add(stream)
  stream.on('error', () => broken.add(stream))
}

export interface StreamLoggerOptions {
  stream?: NodeJS.WritableStream
  format?: LogFormat
}

/**
 * Log lines to a stream (stderr by default): text, coloured only where chalk
 * sees a colour terminal and NO_COLOR is unset, or JSON.
 */
export function streamLogger(level: number, {stream = process.stderr, format = 'text'}: StreamLoggerOptions = {}): Logger {
  const colour = format === 'text' && stream === process.stderr && !process.env.NO_COLOR && chalkStderr.level > 0
  const c = chalkStderr
  watchForBreak(stream)
  const line = (severity: 'info' | 'warn', event: string, detail: string, fields?: LogFields): void => {
    if (broken.has(stream)) return
    const time = new Date().toISOString()
    if (format === 'json') {
      stream.write(jsonLine(time, severity, event, detail, fields))
      return
    }

    if (!colour) {
      stream.write(`${time} ${event} ${detail}\n`)
      return
    }

    const paint = severity === 'warn' ? (x: ChalkInstance) => x.red.bold : (EVENT_COLOURS[event] ?? ((x: ChalkInstance) => x.white))
    stream.write(`${c.dim(time)} ${paint(c)(event)} ${detail}\n`)
  }

  return {
    level,
    log(eventLevel, event, detail, fields) {
      if (eventLevel <= level) line('info', event, detail, fields)
    },
    warn(event, detail, fields) {
      line('warn', event, detail, fields)
    },
  }
}
