import {interruption, reportFailure, type CommandContext, type CommandError} from './failure.js'
import {fastParse, type FastCommandLine, type FastSpec} from './fast-parse.js'

/** A command's shared run function (send-command.ts, dump-command.ts): the exit status. */
type CommandRun<T> = (commandLine: T, command: CommandContext) => Promise<number>

/**
 * Runs a command without oclif (bin/run.js, through a dist/cli/fast-*.cjs
 * bundle made by scripts/build.ts): its command line parsed by fastParse,
 * then the same run function as the oclif command's, failures reported
 * the same way (failure.ts). Resolves with the exit status, or undefined,
 * before anything is done, when the command line is oclif's to handle.
 */
export async function fastRun<T>(argv: string[], spec: FastSpec, run: CommandRun<T>): Promise<number | undefined> {
  // oclif prints its debug output with DEBUG or MSGBUS_DEBUG set.
  if (process.env.DEBUG || process.env[`${spec.bin.toUpperCase().replace(/-/g, '_')}_DEBUG`]) return undefined
  const commandLine: FastCommandLine | undefined = await fastParse(argv, spec)
  if (commandLine === undefined) return undefined
  // As @oclif/core's Command does when it loads: stdout closed early (`| head`) is not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error
  })
  let quiet = false
  const command: CommandContext = {
    bin: spec.bin,
    id: spec.id,
    interruption,
    quietErrors: () => {
      quiet = true
    },
  }
  try {
    return await run(commandLine as T, command)
  } catch (error) {
    return reportFailure(error as CommandError, spec.bin, spec.id, quiet)
  }
}
