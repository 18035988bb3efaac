/**
 * The fast path's view of a command (src/lib/cli/fast-parse.ts, FastSpec),
 * read off the command's own oclif definitions at build time, so that there
 * is one set of flag definitions: the command's. A flag the fast path
 * cannot parse exactly as oclif would (help, a parse function it does not
 * know, greedy multiple values, aliases...) is listed without a parser: the
 * fast path hands a command line using it to oclif. A command with
 * something that acts even when no flag is given (a computed default,
 * flags that must come together, --json, an argument read from stdin) gets
 * no fast path at all.
 */
import {Args, Flags, type Command} from '@oclif/core'
import type {FastArg, FastFlag, FastSpec} from '../src/lib/cli/fast-parse.js'
import {FLAG_PARSER, FLAG_PARSERS, type FlagParserName} from '../src/lib/cli/flag-parsers.js'

type AnyFlag = Record<string, unknown> & {type: 'boolean' | 'option'; parse: (...args: unknown[]) => unknown}

/** Flag properties whose meaning fastParse does not apply: a flag with one is left to oclif. */
const UNTAKEN = ['dependsOn', 'combinable', 'aliases', 'charAliases', 'deprecateAliases', 'deprecated', 'delimiter', 'allowStdin']
/** Properties that act even when the flag is not given: the command is left to oclif. */
const COMMAND_WIDE = ['exactlyOne', 'atLeastOne', 'relationships']

const source = (fn: unknown) => (typeof fn === 'function' ? fn.toString() : undefined)
const AS_GIVEN = {boolean: source(Flags.boolean().parse), option: source(Flags.string().parse)}
const INTEGER = source(Flags.integer().parse)
const ARG_AS_GIVEN = source(Args.string().parse)

function parserOf(flag: AnyFlag): FastFlag['parser'] {
  if (UNTAKEN.some((key) => flag[key] !== undefined)) return undefined
  if (flag.type === 'boolean') return source(flag.parse) === AS_GIVEN.boolean ? 'string' : undefined
  if (flag.multiple && !flag.multipleNonGreedy) return undefined
  const named = (flag.parse as unknown as Record<symbol, unknown>)[FLAG_PARSER]
  if (typeof named === 'string' && named in FLAG_PARSERS) return named as FlagParserName
  if (source(flag.parse) === AS_GIVEN.option) return 'string'
  if (source(flag.parse) === INTEGER) return 'integer'
  return undefined
}

/** Only what is set: the spec is inlined in the bundle. */
function defined<T extends object>(props: T): T {
  return Object.fromEntries(Object.entries(props).filter(([, value]) => value !== undefined)) as T
}

/** The command's FastSpec, or why it has none. */
export function fastSpecOf(command: Command.Class, id: string, bin: string): FastSpec | string {
  if (command.enableJsonFlag) return 'it has --json (enableJsonFlag)'
  const flags: FastFlag[] = []
  for (const [name, flag] of Object.entries({...command.baseFlags, ...command.flags}) as Array<[string, AnyFlag]>) {
    const wide = COMMAND_WIDE.find((key) => flag[key] !== undefined)
    if (wide) return `--${name} has ${wide}`
    if (typeof flag.default === 'function') return `--${name} has a computed default`
    flags.push(
      defined({
        name,
        char: flag.char as string | undefined,
        type: flag.type,
        parser: parserOf(flag),
        multiple: flag.multiple ? true : undefined,
        allowNo: flag.allowNo ? true : undefined,
        required: flag.required ? true : undefined,
        default: flag.default,
        exclusive: flag.exclusive as string[] | undefined,
        options: flag.options as string[] | undefined,
        min: flag.min as number | undefined,
        max: flag.max as number | undefined,
        env: flag.env as string | undefined,
      }),
    )
  }

  const args: FastArg[] = []
  for (const [name, arg] of Object.entries(command.args ?? {})) {
    if (!arg.ignoreStdin) return `argument ${name} may be read from stdin`
    if (arg.multiple || arg.options || source(arg.parse) !== ARG_AS_GIVEN) return `argument ${name} is not a plain string`
    if (arg.default !== undefined && typeof arg.default !== 'string') return `argument ${name} has a computed default`
    args.push(defined({name, required: arg.required ? true : undefined, default: arg.default as string | undefined}))
  }

  return {bin, id, strict: command.strict !== false, args, flags}
}
