import {Flags, type Interfaces} from '@oclif/core'
import {flagRows, shownDefault, type AnyFlagRow, type FlagValues, type OptionTable} from '../server/option-row.js'
import {durationFlag, sizeFlag} from './flags.js'

type Char = NonNullable<Parameters<typeof Flags.string>[0]>['char']

// Only what a row gives: an explicit undefined would override what the flag
// builder brings (sizeFlag's helpValue) and show up in oclif's metadata.
function given<T extends object>(props: T): Partial<T> {
  return Object.fromEntries(Object.entries(props).filter(([, value]) => value !== undefined)) as Partial<T>
}

function flagOf(row: AnyFlagRow) {
  const {summary, description, helpValue, env, dependsOn} = row
  const common = {
    ...given({char: row.char as Char, summary, description, helpValue, env, dependsOn}),
    // The default in the units a user types (8MiB, 1h), for --help and the
    // man page; oclif's types want the flag's own type there, but it prints
    // any value as it is (an `object` spread adds no keys to the type).
    ...(given({defaultHelp: shownDefault(row)}) as object),
  }
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
  return Object.fromEntries(flagRows(table).map(({flag, row}) => [flag, flagOf(row)])) as Interfaces.FlagInput
}

/** Parsed flags back to options, by the table's names; flags not given and without a default are left out. */
export function flagValues<T extends OptionTable>(table: T, flags: Record<string, unknown>): FlagValues<T> {
  const values = flagRows(table).map(({key, flag}) => [key, flags[flag]] as const)
  return Object.fromEntries(values.filter(([, value]) => value !== undefined)) as FlagValues<T>
}
