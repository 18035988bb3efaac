/**
 * The README's synopsis and table of `msgbus serve` options, from the option
 * table (src/lib/server/option-table.ts) and the flags built from it, so the
 * README says what --help and the man page say. scripts/man.ts writes it
 * between the markers below, and its --check fails when it is stale.
 */
import type {Command} from '@oclif/core'
import {optionFlags} from '../src/lib/cli/option-flags.js'
import {flagRows, shownDefault, type AnyFlagRow} from '../src/lib/server/option-row.js'
import {OPTION_TABLE} from '../src/lib/server/option-table.js'

export const START = '<!-- serve-options:start (written by `npm run man` from src/lib/server/option-table.ts: edit there) -->'
export const END = '<!-- serve-options:end -->'

const INDENT = '    '
const WIDTH = 100

interface Option {
  row: AnyFlagRow
  flag: string
  oclif: Command.Flag
}

/** `<seconds>` as SECONDS; what --help shows, so the README's words match it. */
function placeholder({oclif}: Option): string | undefined {
  if (oclif.type !== 'option' || oclif.options) return undefined
  const help = typeof oclif.helpValue === 'string' ? oclif.helpValue : oclif.helpValue?.[0]
  return help?.replace(/^<(.*)>$/, '$1').toUpperCase()
}

function synopsisItem(option: Option): string {
  const {row, flag, oclif} = option
  const name = oclif.char ? `-${oclif.char}` : `--${flag}`
  const value = row.kind === 'enum' ? row.values.join('|') : placeholder(option)
  return `[${value === undefined ? name : `${name} ${value}`}]${row.kind === 'list' ? '...' : ''}`
}

/** The usage line, wrapped with its continuation lines under the first option. */
function synopsis(options: Option[]): string[] {
  const head = `${INDENT}msgbus serve`
  const lines = [head]
  for (const item of options.map(synopsisItem)) {
    const last = lines.length - 1
    if (lines[last].length > head.length && lines[last].length + 1 + item.length > WIDTH) lines.push(' '.repeat(head.length) + ` ${item}`)
    else lines[last] += ` ${item}`
  }

  return lines
}

function defaultCell({row}: Option): string {
  if (row.defaultText !== undefined) return row.defaultText
  if (row.default === undefined) return row.kind === 'boolean' ? '' : `none${row.env ? ` (or \`$${row.env}\`)` : ''}`
  return shownDefault(row)!
}

function tableRow(option: Option): string {
  const {flag, oclif} = option
  const value = placeholder(option)
  const names = `${oclif.char ? `-${oclif.char}, ` : ''}--${flag}${value === undefined ? '' : ` ${value}`}`
  const cells = [`\`${names}\``, defaultCell(option), option.row.doc].map((text) => text.replace(/\|/g, '\\|'))
  return `|${cells.map((text) => (text === '' ? ' ' : ` ${text} `)).join('|')}|`
}

/** What goes between the markers (the markers not included). */
export function serveOptionsSection(): string {
  const flags = optionFlags(OPTION_TABLE) as Record<string, Command.Flag>
  const options = flagRows(OPTION_TABLE).map(({flag, row}) => ({row, flag, oclif: flags[flag]}))
  return ['', ...synopsis(options), '', '| flag | default | what it does |', '| --- | --- | --- |', ...options.map(tableRow), ''].join('\n')
}

/** `readme` with the section between the markers replaced by `section`. */
export function spliceSection(readme: string, section: string): string {
  const start = readme.indexOf(START)
  const end = readme.indexOf(END, start)
  if (start < 0 || end < 0) throw new Error(`the README has no ${START} ... ${END} markers`)
  return `${readme.slice(0, start + START.length)}\n${section}\n${readme.slice(end)}`
}
