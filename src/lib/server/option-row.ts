import type {BusServerOptions} from './options.js'
import type {LogFormat} from './ops/log.js'
import {durationAsTyped} from '../util/duration.js'
import {sizeAsTyped} from '../util/size.js'

/**
 * What only `msgbus serve` has, beside the library's options: the PEM files
 * it reads (the library takes their contents), the user it becomes, how much
 * it logs, and --hash-password. Rows for these are marked `serveOnly`, so
 * that the library's DEFAULTS never pick them up.
 */
export interface ServeOnlyOptions {
  certFile?: string
  keyFile?: string
  user?: string
  verbose?: number
  logFormat?: LogFormat
  hashPassword?: boolean
  /** A TOML file of options (config-file.ts), read below the flags and the environment. */
  config?: string
  /** `--bus URL`: the shared log this node orders messages through (link/open-link.ts), opened as the server starts. */
  bus?: string
  /** `N` or `auto`: worker processes (node:cluster), their messages ordered by a primary (src/lib/cluster). */
  workers?: string
}

type AllOptions = BusServerOptions & ServeOnlyOptions
type ValueOf<K extends keyof AllOptions> = NonNullable<AllOptions[K]>

interface FlagText {
  /** The long flag, when it is not the option's name in kebab case. */
  flag?: string
  char?: string
  /** The line under the flag in --help and the man page. */
  summary: string
  /** Paragraphs below the summary in --help and the man page. */
  description?: string
  /** README's "what it does": may point at other sections, and uses the placeholder (`DIR`, `N`) in its flag column. */
  doc: string
  helpValue?: string
  /** The environment variable that gives the option; by default MSGBUS_ and the flag in upper snake case (option-flags.ts); false for none. */
  env?: string | false
  dependsOn?: string[]
  /** README's default when the value alone would not say it: none given, or one computed at start-up. */
  defaultText?: string
  /** README's default reads `0 (zeroMeans)` when the default is 0. */
  zeroMeans?: string
}

// The kinds a value of type T may be given as on the command line; `never`
// for a type no flag can carry (a Buffer, a Logger), whose row must then be
// a LibraryRow. The [T] wrappers keep a union such as `string | Buffer` whole.
type FlagKind<T> = [T] extends [number]
  ? {kind: 'integer'; default?: T; min?: number; max?: number} | {kind: 'size'; default?: T} | {kind: 'duration'; default?: T}
  : [T] extends [boolean]
    ? {kind: 'boolean'}
    : [T] extends [readonly string[]]
      ? {kind: 'list'}
      : [T] extends [string]
        ? string extends T
          ? {kind: 'string'; default?: T}
          : {kind: 'enum'; values: readonly T[]; default?: T}
        : never

export type FlagRow<T> = FlagText & FlagKind<T>

/** An option of the library that `msgbus serve` has no flag for; `noFlag` says why. */
export interface LibraryRow<T> {
  noFlag: string
  default?: T
}

/**
 * A row for every option of BusServerOptions and of ServeOnlyOptions, and
 * nothing else: a table missing a key, or with one neither interface has,
 * does not compile, nor does a default or an enum value the option's type
 * does not allow.
 */
export type OptionTable = {
  [K in keyof BusServerOptions]-?: FlagRow<ValueOf<K>> | LibraryRow<ValueOf<K>>
} & {
  [K in keyof ServeOnlyOptions]-?: FlagRow<ValueOf<K>> & {serveOnly: true}
}

/** Any row, for code that walks the table without caring which option it is. */
export type AnyFlagRow = FlagText & {serveOnly?: true} & (
  | {kind: 'integer'; default?: number; min?: number; max?: number}
  | {kind: 'size'; default?: number}
  | {kind: 'duration'; default?: number}
  | {kind: 'boolean'; default?: undefined}
  | {kind: 'list'; default?: undefined}
  | {kind: 'string'; default?: string}
  | {kind: 'enum'; values: readonly string[]; default?: string}
)

type AnyRow = AnyFlagRow | LibraryRow<unknown>

/**
 * A row's default as --help, the man page and the README show it: in the
 * units a user types (`8MiB`, not 8388608; `1h`, not 3600), with what 0
 * means where it means something; undefined without a default.
 */
export function shownDefault(row: AnyFlagRow): string | undefined {
  if (row.default === undefined) return undefined
  if (row.default === 0 && row.zeroMeans !== undefined) return `0 (${row.zeroMeans})`
  if (row.kind === 'size') return sizeAsTyped(row.default)
  if (row.kind === 'duration') return durationAsTyped(row.default * 1000)
  return String(row.default)
}

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

/** The rows with a flag, in the table's order (which is --help's and the man page's), each with its flag's name. */
export function flagRows(table: object): Array<{key: string; flag: string; row: AnyFlagRow}> {
  return Object.entries(table as Record<string, AnyRow>)
    .filter((entry): entry is [string, AnyFlagRow] => !('noFlag' in entry[1]))
    .map(([key, row]) => ({key, flag: row.flag ?? kebab(key), row}))
}

type WithDefault<T> = {[K in keyof T]-?: T[K] extends {default: unknown} ? K : never}[keyof T]

/** The library's options that have a default in `table`. */
export type Defaulted<T extends OptionTable> = Extract<WithDefault<T>, keyof BusServerOptions>

/** The library's defaults, as the table gives them. */
export function defaultsOf<T extends OptionTable>(table: T): {[K in Defaulted<T>]-?: ValueOf<K>} {
  const rows = Object.entries(table as Record<string, AnyRow & {serveOnly?: true}>)
  return Object.fromEntries(rows.filter(([, row]) => row.default !== undefined && !row.serveOnly).map(([key, row]) => [key, row.default])) as {
    [K in Defaulted<T>]-?: ValueOf<K>
  }
}

type FlagKeys<T> = {[K in keyof T]-?: T[K] extends {noFlag: string} ? never : K}[keyof T] & keyof AllOptions

/** What a parse of the table's flags gives, by option name: always there when the flag has a default. */
export type FlagValues<T extends OptionTable> = {[K in FlagKeys<T> & WithDefault<T>]-?: ValueOf<K>} & {
  [K in Exclude<FlagKeys<T>, WithDefault<T>>]?: ValueOf<K>
}
