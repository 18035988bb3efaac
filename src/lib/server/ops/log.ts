/** How the server logs: the Logger interface and its levels (streamLogger, with colours and JSON, is in logger.ts). */

/** Verbosity levels: what `-v` adds at each step. */
export enum LogLevel {
  Always = 0,
  Subscriptions = 1,
  Documents = 2,
  Publishes = 3,
}

/** `--log-format`: lines for people, or one JSON object a line for log shippers. */
export const LOG_FORMATS = ['text', 'json'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]

/**
 * What a line says besides its text, for `--log-format json`: the same facts
 * as values (numbers as numbers), so a log shipper need not parse the text.
 */
export type LogFields = Record<string, unknown>

export interface Logger {
  readonly level: number
  /** One event, one line. */
  log(level: LogLevel, event: string, detail: string, fields?: LogFields): void
  /** Something went wrong that an operator should see. */
  warn(event: string, detail: string, fields?: LogFields): void
}

export const silentLogger: Logger = {level: -1, log() {}, warn() {}}
