/**
 * How a msgbus command reports a failure: one line on stderr, `msgbus
 * <command>: <what was wrong>`, and an exit status (2 for a usage error, 1
 * for anything else), as Unix tools do. Shared by the oclif commands
 * (MsgbusCommand.catch) and the fast path (fast-cli.ts), so that both say
 * the same.
 */
export interface CommandError extends Error {
  code?: string
  oclif?: {exit?: number}
  /** Set by oclif's parser on usage errors (bad flag, bad value, missing argument). */
  parse?: unknown
}

/** oclif's parser reports a bad value over several indented lines; we want one. */
function oneLine(message: string): string {
  return message
    .replace(/\s*See more help with --help\s*$/, '')
    .replace(/^The following errors? occurred:\s*/, '')
    .replace(/^Parsing (--?[\w-]+)\s*\n\s*/, '$1: ')
    .replace(/\s*\n\s*/g, ' ')
    .trim()
}

/** An error a command's run() throws for a misuse its flags cannot express: reported like oclif's this.error(message, {exit}). */
export function failure(message: string, exit: number): CommandError {
  return Object.assign(new Error(message), {oclif: {exit}})
}

/** Writes the failure's line (unless quiet) and returns the exit status. */
export function reportFailure(error: CommandError, bin: string, id: string, quiet: boolean): number {
  const usage = error.parse !== undefined || /See more help with --help/.test(error.message)
  if (!quiet) process.stderr.write(`${bin} ${id}: ${oneLine(error.message)}${usage ? ` (see ${bin} ${id} --help)` : ''}\n`)
  // A failure() names its own status; anything else is 2 for usage, else 1.
  return error.oclif?.exit ?? (usage ? 2 : 1)
}

/** What a command's shared run function needs of whoever runs it: oclif's command, or the fast path. */
export interface CommandContext {
  /** The CLI's name (`msgbus`). */
  bin: string
  /** The command's id (`send`). */
  id: string
  /** Aborted at SIGINT or SIGTERM: how a long-running command learns to wind down and report. */
  interruption(): AbortSignal
  /** Called by commands with -q: the exit status alone reports a failure. */
  quietErrors(): void
}

/** Aborted at SIGINT or SIGTERM (taken from then on). */
export function interruption(): AbortSignal {
  const interrupt = new AbortController()
  process.once('SIGINT', () => interrupt.abort())
  process.once('SIGTERM', () => interrupt.abort())
  return interrupt.signal
}
