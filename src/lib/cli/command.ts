import {Command, Flags} from '@oclif/core'
import {interruption, reportFailure, type CommandContext, type CommandError} from './failure.js'

/**
 * What every msgbus command shares: a failure is one line on stderr,
 * `msgbus <command>: <what was wrong>`, and a non-zero exit (2 for a usage
 * error, 1 for anything else), as Unix tools do (failure.ts).
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
    return interruption()
  }

  /** This command as the shared run functions (send-command.ts, dump-command.ts) see it. */
  protected context(): CommandContext {
    return {
      bin: this.config.bin,
      id: this.id ?? '',
      interruption: () => this.interruption(),
      quietErrors: () => {
        this.quietErrors = true
      },
    }
  }

  protected override async catch(error: CommandError): Promise<unknown> {
    if (error.code === 'EEXIT') throw error
    return this.exit(reportFailure(error, this.config.bin, this.id ?? '', this.quietErrors))
  }
}
