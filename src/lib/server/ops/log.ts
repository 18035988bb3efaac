/** How the server logs: the Logger interface and its levels (streamLogger, with colours, is in logger.ts). */

/** Verbosity levels: what `-v` adds at each step. */
export enum LogLevel {
  Always = 0,
  Subscriptions = 1,
  Documents = 2,
  Publishes = 3,
}

export interface Logger {
  readonly level: number
  /** One event, one line. */
  log(level: LogLevel, event: string, detail: string): void
  /** Something went wrong that an operator should see. */
  warn(event: string, detail: string): void
}

export const silentLogger: Logger = {level: -1, log() {}, warn() {}}
