import {readFile} from '../util/read-file.js'
import {Parser, type Interfaces} from '@oclif/core'
import {parse as parseToml, TomlError} from 'smol-toml'
import {messageOf, reasonOf} from '../util/errors.js'

/** A config file that cannot be used: a usage error (exit 2), naming the file, the key and what was wrong. */
export class ConfigFileError extends Error {}

/** Keys a config file may not hold: an action, and the file itself. */
const NOT_IN_FILE = new Set(['config', 'hash-password'])

type FlagDefinition = Interfaces.FlagInput[string]

/** oclif's report of a bad value, on one line and without the flag's name it begins with. */
function parseReason(error: unknown): string {
  return messageOf(error)
    .replace(/^Parsing --[\w-]+\s*/, '')
    .replace(/\s*See more help with --help\s*$/, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim()
}

/** A TOML value as the words a command line would give the flag. */
function tokensOf(value: unknown, multiple: boolean): string[] | string {
  const scalar = (item: unknown) => (typeof item === 'string' ? item : typeof item === 'number' && Number.isFinite(item) ? String(item) : undefined)
  if (Array.isArray(value)) {
    if (!multiple) return 'a list where one value is expected'
    const items = value.map(scalar)
    return items.includes(undefined) ? 'a list of strings or numbers is expected' : (items as string[])
  }

  const one = scalar(value)
  return one === undefined ? `a string or a number is expected, not ${typeof value === 'object' ? 'a table' : typeof value}` : [one]
}

/**
 * One key's value, parsed and checked by the flag's own parser (sizes,
 * durations, ranges, choices), so a file accepts what the command line does.
 */
async function valueOf(name: string, definition: FlagDefinition, value: unknown): Promise<unknown> {
  if (definition.type === 'boolean') {
    if (typeof value !== 'boolean') throw new Error('true or false is expected')
    return value
  }

  const multiple = Boolean(definition.multiple)
  const tokens = tokensOf(value, multiple)
  if (typeof tokens === 'string') throw new Error(tokens)
  // The flag alone: its environment variable and default are not the file's, and what it depends on is checked on the whole.
  const alone = {...definition, env: undefined, default: undefined, dependsOn: undefined, exclusive: undefined, required: false} as FlagDefinition
  try {
    const {flags} = await Parser.parse(
      tokens.map((token) => `--${name}=${token}`),
      {flags: {[name]: alone}, args: {}, strict: true},
    )
    return flags[name]
  } catch (error) {
    throw new Error(parseReason(error), {cause: error})
  }
}

/**
 * Reads a TOML config file of `msgbus serve` options: keys are the long
 * flags (`port = 8080`, `history-dir = "/var/lib/msgbus"`, lists as arrays),
 * each value checked as the flag checks it. Returns the values by flag
 * name. Throws a ConfigFileError, `FILE: KEY: what was wrong` (or
 * `FILE:LINE:COLUMN:` for TOML that does not parse).
 */
export async function readConfigFile(file: string, definitions: Interfaces.FlagInput): Promise<Record<string, unknown>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new ConfigFileError(`cannot read config file ${file}: ${reasonOf(error, {ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a folder'})}`, {cause: error})
  }

  let table: Record<string, unknown>
  try {
    table = parseToml(text)
  } catch (error) {
    if (!(error instanceof TomlError)) throw error
    const what = error.message.replace(/^Invalid TOML document: /, '').split('\n')[0]
    throw new ConfigFileError(`${file}:${error.line}:${error.column}: not TOML: ${what}`, {cause: error})
  }

  const values: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(table)) {
    const definition = Object.hasOwn(definitions, key) && !NOT_IN_FILE.has(key) ? definitions[key] : undefined
    if (!definition) throw new ConfigFileError(`${file}: ${key}: not an option of msgbus serve (keys are its long flags, as in port or history-dir)`)
    try {
      values[key] = await valueOf(key, definition, value)
    } catch (error) {
      throw new ConfigFileError(`${file}: ${key}: ${messageOf(error)}`, {cause: error})
    }
  }

  return values
}

/**
 * Fills in what a config file gives below the flags and the environment:
 * a flag that oclif set from neither (its value is its default, or none)
 * takes the file's value. Returns the flags given by the file.
 */
export function underFlags(
  file: string,
  definitions: Interfaces.FlagInput,
  flags: Record<string, unknown>,
  metadata: {flags: Record<string, {setFromDefault?: boolean} | undefined>},
  fromFile: Record<string, unknown>,
): string[] {
  const taken: string[] = []
  for (const [name, value] of Object.entries(fromFile)) {
    if (flags[name] !== undefined && !metadata.flags[name]?.setFromDefault) continue
    flags[name] = value
    taken.push(name)
  }

  // What oclif checks of flags (--key needs --cert), checked of the file's too.
  for (const name of taken) {
    const missing = (definitions[name].dependsOn ?? []).filter((other) => flags[other] === undefined)
    if (missing.length > 0) throw new ConfigFileError(`${file}: ${name}: needs ${missing.join(' and ')} too (in the file, the environment or a flag)`)
  }

  return taken
}
