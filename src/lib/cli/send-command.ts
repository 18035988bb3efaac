import type Send from '../../commands/send.js'
import type {Interfaces} from '@oclif/core'
import {clientOptions} from './client-options.js'
import {failure, type CommandContext} from './failure.js'
import {send} from './send.js'

/** What oclif's parser (or the fast path's, fast-parse.ts) makes of `msgbus send`'s command line. */
interface SendCommandLine {
  args: {target: string; files?: string}
  argv: unknown[]
  flags: Interfaces.InferredFlags<(typeof Send)['flags']>
}

/**
 * `msgbus send` once its command line is parsed: run by the oclif command
 * (src/commands/send.ts) and by the fast path (fast-cli.ts) alike. Resolves
 * with the exit status.
 */
export async function runSend({args, argv, flags}: SendCommandLine, command: CommandContext): Promise<number> {
  if (flags.quiet) command.quietErrors()
  const files = (argv as string[]).slice(1)
  const messages = flags.message ?? []
  if (flags.lines && files.length > 0) throw failure('--lines reads stdin: give no FILE', 2)
  if (messages.length > 0 && (flags.lines || files.length > 0)) throw failure('-m sends its text: give no FILE and no --lines', 2)
  const say = (line: string): void => {
    if (!flags.quiet) process.stderr.write(`${command.bin} ${command.id}: ${line}\n`)
  }

  const delivered = await send({
    ...(await clientOptions(flags)),
    target: args.target,
    files,
    messages,
    type: flags.type,
    lines: flags.lines,
    bufferBytes: flags.buffer,
    retryForMs: flags['retry-for'] === undefined ? undefined : flags['retry-for'] * 1000,
    signal: flags.lines ? command.interruption() : undefined,
    stdin: process.stdin,
    warn: say,
    status: flags.verbose ? say : undefined,
    onPublished: flags.verbose ? ({id, subscribers}) => process.stdout.write(id === undefined ? 'published (the server gave no id)\n' : `id=${id} subscribers=${subscribers}\n`) : undefined,
  })
  return delivered ? 0 : 1
}
