import {FLAG_PARSERS, type FlagParserName} from './flag-parsers.js'

/**
 * A command's flags and arguments as the fast path sees them: derived from
 * the command's own oclif definitions by scripts/build.ts (fast-spec.ts),
 * never written by hand.
 */
export interface FastFlag {
  name: string
  char?: string
  type: 'boolean' | 'option'
  /** How a value is read: as given, as oclif's Flags.integer reads it, or by one of FLAG_PARSERS; none: the fast path does not take this flag. */
  parser?: 'string' | 'integer' | FlagParserName
  multiple?: boolean
  allowNo?: boolean
  /** oclif refuses a command line without it. */
  required?: boolean
  default?: unknown
  exclusive?: string[]
  options?: string[]
  min?: number
  max?: number
  env?: string
}

export interface FastArg {
  name: string
  required?: boolean
  default?: string
}

export interface FastSpec {
  /** The CLI's name (`msgbus`), as oclif's config.bin. */
  bin: string
  id: string
  strict: boolean
  args: FastArg[]
  flags: FastFlag[]
}

export interface FastCommandLine {
  args: Record<string, string | undefined>
  argv: string[]
  flags: Record<string, unknown>
}

/** Flags that oclif's Flags.integer takes (anything else it refuses, with its own message). */
function integerOf(input: string, flag: FastFlag): number | undefined {
  if (!/^-?\d+$/.test(input)) return undefined
  const value = Number.parseInt(input, 10)
  if ((flag.min !== undefined && value < flag.min) || (flag.max !== undefined && value > flag.max)) return undefined
  return value
}

async function valueOf(input: string, flag: FastFlag): Promise<unknown> {
  if (flag.options && !flag.options.includes(input)) return undefined
  if (flag.parser === 'string') return input
  if (flag.parser === 'integer') return integerOf(input, flag)
  try {
    return await FLAG_PARSERS[flag.parser as FlagParserName](input)
  } catch {
    return undefined
  }
}

/**
 * The command line parsed as oclif's parser would, for the plain ones a
 * shell loop types: `--name value`, `--name=value`, `-c value`, booleans
 * (`--no-name` too), arguments. Anything else, and anything oclif would
 * refuse or answer itself (help, `--`, bundled short flags, unknown flags,
 * a value starting with `-`, a bad value, a flag given twice, a missing
 * argument or required flag, exclusive flags together, a flag from the
 * environment), gives undefined: the caller then hands the whole command
 * line to oclif, whose parser and messages decide. Nothing is read or
 * written here.
 */
export async function fastParse(argv: string[], spec: FastSpec): Promise<FastCommandLine | undefined> {
  const long = new Map(spec.flags.map((flag) => [flag.name, flag]))
  const short = new Map(spec.flags.filter((flag) => flag.char !== undefined).map((flag) => [flag.char!, flag]))
  const given = new Map<string, unknown>()
  const positional: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!
    if (!token.startsWith('-')) {
      positional.push(token)
      continue
    }

    let flag: FastFlag | undefined
    let inline: string | undefined
    let negated = false
    if (/^--[a-z][\w-]*(=|$)/i.test(token)) {
      const equals = token.indexOf('=')
      const name = token.slice(2, equals === -1 ? undefined : equals)
      inline = equals === -1 ? undefined : token.slice(equals + 1)
      flag = long.get(name)
      if (flag === undefined && name.startsWith('no-') && long.get(name.slice(3))?.allowNo) {
        flag = long.get(name.slice(3))
        negated = true
      }
    } else if (/^-[a-z]$/i.test(token)) {
      flag = short.get(token[1]!)
    }

    if (flag?.parser === undefined) return undefined
    if (flag.type === 'boolean') {
      if (inline !== undefined || given.has(flag.name)) return undefined
      given.set(flag.name, !negated)
      continue
    }

    const input = inline ?? argv[++i]
    if (negated || input === undefined || input === '' || input.startsWith('-')) return undefined
    const value = await valueOf(input, flag)
    if (value === undefined) return undefined
    if (flag.multiple) given.set(flag.name, [...((given.get(flag.name) as unknown[] | undefined) ?? []), value])
    else if (given.has(flag.name)) return undefined
    else given.set(flag.name, value)
  }

  for (const name of given.keys()) if (long.get(name)!.exclusive?.some((other) => given.has(other))) return undefined
  if (spec.flags.some((flag) => flag.required && !given.has(flag.name))) return undefined
  // A flag that reads the environment, when it is set: oclif's to weigh against the command line and the default.
  if (spec.flags.some((flag) => flag.env !== undefined && process.env[flag.env] !== undefined)) return undefined
  const flags = Object.fromEntries(given)
  for (const flag of spec.flags) if (!given.has(flag.name) && flag.default !== undefined) flags[flag.name] = flag.default

  if (spec.strict && positional.length > spec.args.length) return undefined
  const args: Record<string, string | undefined> = {}
  const parsed: string[] = []
  for (const [index, arg] of spec.args.entries()) {
    const value = positional[index] ?? arg.default
    if (value === undefined && arg.required) return undefined
    if (value === undefined) continue
    parsed.push(value)
    args[arg.name] = value
  }

  // oclif's order for argv: the arguments, then what no argument took, sorted by where they were on the command line.
  const rest = positional.slice(spec.args.length)
  return {args, argv: [...parsed, ...rest].sort((a, b) => argv.indexOf(a) - argv.indexOf(b)), flags}
}
