import type Dump from '../../commands/dump.js'
import type {Interfaces} from '@oclif/core'
import {chalkStderr, default as chalk} from 'chalk'
import {clientOptions} from './client-options.js'
import {colourFor} from './colour.js'
import {dump, lossSummary, summary} from './dump.js'
import {failure, type CommandContext} from './failure.js'

/** What oclif's parser (or the fast path's, fast-parse.ts) makes of `msgbus dump`'s command line. */
interface DumpCommandLine {
  args: {target: string}
  flags: Interfaces.InferredFlags<(typeof Dump)['flags']>
}

/**
 * `msgbus dump` once its command line is parsed: run by the oclif command
 * (src/commands/dump.ts) and by the fast path (fast-cli.ts) alike. Resolves
 * with the exit status.
 */
export async function runDump({args, flags}: DumpCommandLine, command: CommandContext): Promise<number> {
  const signal = command.interruption()
  const dim = (text: string) => (colourFor(process.stderr, chalkStderr) ? chalkStderr.dim(text) : text)
  process.stdout.on('error', () => {})
  const result = await dump({
    ...(await clientOptions(flags)),
    target: args.target,
    format: flags.raw ? 'raw' : flags.json ? 'json' : flags.quiet ? 'headers' : 'line',
    type: flags.type,
    sender: flags.sender,
    count: flags.count,
    timeoutSeconds: flags.timeout,
    reconnect: flags.reconnect,
    since: flags.since,
    poll: flags.poll,
    signal,
    output: process.stdout,
    saveDir: flags.save,
    colour: colourFor(process.stdout, chalk),
    terminal: process.stdout.isTTY === true,
    status: flags.verbose || process.stderr.isTTY ? (line) => process.stderr.write(`${dim(`${command.bin} ${command.id}: ${line}`)}\n`) : undefined,
    warn: (line) => process.stderr.write(`${command.bin} ${command.id}: ${line}\n`),
  })
  if (result.reason === 'aborted') process.stderr.write(`${summary(result)}\n`)
  const losses = lossSummary(result)
  if (losses) process.stderr.write(`${command.bin} ${command.id}: ${losses}\n`)
  if (result.losses.events > 0 && !flags['allow-loss']) return 1
  if (result.reason === 'timeout' && flags.count !== undefined) throw failure(`${summary(result)}: fewer than ${flags.count} before the timeout`, 1)
  return 0
}
