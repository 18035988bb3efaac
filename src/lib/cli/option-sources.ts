import type {Interfaces} from '@oclif/core'

/**
 * Where a serve option came from (serve.ts reads three places: the command
 * line, the environment, a config file), so that a message about a value
 * names what the user wrote, not a flag they never typed.
 */
export class OptionSources {
  constructor(
    private readonly argv: readonly string[],
    private readonly definitions: Interfaces.FlagInput,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** The flag is on the command line, long or short. */
  onCommandLine(flag: string): boolean {
    const char = this.definitions[flag]?.char
    return this.argv.some((arg) => arg.startsWith(`--${flag}`) || (char !== undefined && arg.startsWith(`-${char}`)))
  }

  /** The flag's variable, when it is set (and the flag not given, which would win). */
  fromEnvironment(flag: string): string | undefined {
    const variable = this.definitions[flag]?.env
    return variable !== undefined && this.env[variable] && !this.onCommandLine(flag) ? variable : undefined
  }

  /** `--secret`, `$MSGBUS_SECRET` or `secret in FILE`: where the option's value came from. */
  name(flag: string, file: string | undefined): string {
    if (this.onCommandLine(flag)) return `--${flag}`
    const variable = this.fromEnvironment(flag)
    return variable !== undefined ? `$${variable}` : `${flag} in ${file}`
  }

  /** oclif's report of a bad value (`Parsing --port ...`) about a value from the environment names the variable instead. */
  blame(error: Error): Error {
    const flag = /^Parsing --([\w-]+)/.exec(error.message)?.[1]
    const variable = flag === undefined ? undefined : this.fromEnvironment(flag)
    if (variable !== undefined) error.message = error.message.replace(/^Parsing --[\w-]+\s*/, () => `$${variable}: `)
    return error
  }
}
