/**
 * streamLogger, coloured by chalk. The server core imports log.ts, which
 * has the rest and no chalk, so that `msgbus/server` does not load chalk.
 */
import {chalkStderr, type ChalkInstance} from 'chalk'
import type {Logger} from './log.js'

export {LogLevel, silentLogger, type Logger} from './log.js'

const EVENT_COLOURS: Record<string, (c: ChalkInstance) => ChalkInstance> = {
  listen: (c) => c.green,
  subscribe: (c) => c.cyan,
  unsubscribe: (c) => c.cyan.dim,
  publish: (c) => c.magenta,
  document: (c) => c.blue,
  stop: (c) => c.yellow,
}

/** Log lines to a stream (stderr by default); coloured only where chalk sees a colour terminal and NO_COLOR is unset. */
export function streamLogger(level: number, stream: NodeJS.WritableStream = process.stderr): Logger {
  const colour = stream === process.stderr && !process.env.NO_COLOR && chalkStderr.level > 0
  const c = chalkStderr
  const line = (event: string, detail: string, paint?: (c: ChalkInstance) => ChalkInstance): void => {
    const time = new Date().toISOString()
    stream.write(colour ? `${c.dim(time)} ${(paint ?? ((x) => x.white))(c)(event)} ${detail}\n` : `${time} ${event} ${detail}\n`)
  }

  return {
    level,
    log(eventLevel, event, detail) {
      if (eventLevel <= level) line(event, detail, EVENT_COLOURS[event])
    },
    warn(event, detail) {
      line(event, detail, (x) => x.red.bold)
    },
  }
}
