import {Command, Flags} from '@oclif/core'

interface CommandError extends Error {
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

/**
 * What every msgbus command shares: a failure is one line on stderr,
 * `msgbus <command>: <what was wrong>`, and a non-zero exit (2 for a usage
 * error, 1 for anything else), as Unix tools do.
 */
export abstract class MsgbusCommand extends Command {
  // package.json's additionalHelpFlags already makes -h help before any
  // command loads (`msgbus -h`, the plugins' commands); declared here too so
  // that each command's help and shell completion list it.
  static override baseFlags = {help: Flags.help({char: 'h', summary: 'Show the help and exit.'})}

  /** Set by commands with -q: the exit status alone reports a failure. */
  protected quietErrors = false

  /** Aborted at SIGINT or SIGTERM: how a long-running command learns to wind down and report. */
  protected interruption(): AbortSignal {
    const interrupt = new AbortController()
    process.once('SIGINT', () => interrupt.abort())
    process.once('SIGTERM', () => interrupt.abort())
    return interrupt.signal
  }

  protected override async catch(error: CommandError): Promise<unknown> {
    if (error.code === 'EEXIT') throw error
    const usage = error.parse !== undefined || /See more help with --help/.test(error.message)
    if (!this.quietErrors) process.stderr.write(`${this.config.bin} ${this.id}: ${oneLine(error.message)}${usage ? ` (see ${this.config.bin} ${this.id} --help)` : ''}\n`)
    // this.error(message, {exit}) names its own status; anything else is 2 for usage, else 1.
    return this.exit(error.oclif?.exit ?? (usage ? 2 : 1))
  }
}
