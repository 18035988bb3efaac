import {Flags, type Interfaces} from '@oclif/core'
import {flagRows, shownDefault, type AnyFlagRow, type FlagValues, type OptionTable} from '../server/option-row.js'
import {durationFlag, sizeFlag} from './flags.js'

type Char = NonNullable<Parameters<typeof Flags.string>[0]>['char']

// Only what a row gives: an explicit undefined would override what the flag
// builder brings (sizeFlag's helpValue) and show up in oclif's metadata.
function given<T extends object>(props: T): Partial<T> {
  return Object.fromEntries(Object.entries(props).filter(([, value]) => value !== undefined)) as Partial<T>
}

/**
 * The environment variable of a flag: the row's own (MSGBUS_SECRET), else
 * MSGBUS_ and the long flag in upper snake case (--history-dir:
 * MSGBUS_HISTORY_DIR); none for a row that says `env: false`.
 */
export function envOf(flag: string, row: AnyFlagRow): string | undefined {
  if (row.env === false) return undefined
  return row.env ?? `MSGBUS_${flag.replace(/-/g, '_').toUpperCase()}`
}

/**
 * A flag's default as --help shows it, when it is not the value itself.
 * oclif shows a defaultHelp only when it is a function, and takes any such
 * function for help computed at run time; this one is marked as constant,
 * so that scripts/build.ts still bundles the command as a stand-in (its
 * help then read from the manifest, where oclif has called the function).
 */
export function constantHelp(text: string): () => Promise<string> {
  return Object.assign(async () => text, {[CONSTANT_HELP]: true})
}

/** The mark of constantHelp's functions (a registered symbol: scripts/build.ts checks it without importing this module). */
export const CONSTANT_HELP = Symbol.for('msgbus.constantHelp')

function flagOf(flag: string, row: AnyFlagRow) {
  const {summary, description, helpValue, dependsOn} = row
  const shown = shownDefault(row)
  // The default in the units a user types (8MiB, 1h), for --help and the man page.
  const defaultHelp = shown === undefined ? undefined : constantHelp(shown)
  const common = given({char: row.char as Char, summary, description, helpValue, env: envOf(flag, row), dependsOn, defaultHelp})
  switch (row.kind) {
    case 'integer':
      return Flags.integer({...common, ...given({default: row.default, min: row.min, max: row.max})})
    case 'size':
      return sizeFlag({...common, ...given({default: row.default})})
    case 'duration':
      return durationFlag({...common, ...given({default: row.default})})
    case 'string':
      return Flags.string({...common, ...given({default: row.default})})
    case 'enum':
      return Flags.string({...common, options: [...row.values], ...given({default: row.default})})
    case 'boolean':
      return Flags.boolean(common)
    case 'list':
      return Flags.string({...common, multiple: true})
  }
}

/** The oclif flags of every row of `table` that has one, in the table's order. */
export function optionFlags(table: OptionTable): Interfaces.FlagInput {
  return Object.fromEntries(flagRows(table).map(({flag, row}) => [flag, flagOf(flag, row)])) as Interfaces.FlagInput
}

/**
 * Parsed flags back to options, by the table's names; flags not given and
 * without a default are left out. A list from the environment is one
 * string (oclif does not split it): it becomes a list of one, which the
 * option splits at commas as it does a flag's value.
 */
export function flagValues<T extends OptionTable>(table: T, flags: Record<string, unknown>): FlagValues<T> {
  const listed = (row: AnyFlagRow, value: unknown) => (row.kind === 'list' && typeof value === 'string' ? [value] : value)
  const values = flagRows(table).map(({key, flag, row}) => [key, listed(row, flags[flag])] as const)
  return Object.fromEntries(values.filter(([, value]) => value !== undefined)) as FlagValues<T>
}
