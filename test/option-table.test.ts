// The option table (src/lib/server/option-table.ts) against what the compiler
// cannot hold to it: the defaults BusServerOptions' doc comments state, and
// the round trip of every flag through oclif's parser back to its option.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {Parser} from '@oclif/core'
import Serve from '../src/commands/serve.js'
import {flagValues} from '../src/lib/cli/option-flags.js'
import {flagRows, type AnyFlagRow} from '../src/lib/server/option-row.js'
import {OPTION_TABLE} from '../src/lib/server/option-table.js'
import {DEFAULTS} from '../src/lib/server/options.js'
import {formatSize} from '../src/lib/util/size.js'

/** Each field of BusServerOptions with the text of its doc comment. */
function docComments(): Map<string, string> {
  const source = readFileSync(new URL('../src/lib/server/options.ts', import.meta.url), 'utf8')
  const body = /export interface BusServerOptions \{([\s\S]*?)\n\}/.exec(source)![1]
  const fields = new Map<string, string>()
  for (const [, comment, name] of body.matchAll(/\/\*\*([\s\S]*?)\*\/\s*(\w+)\?:/g)) fields.set(name, comment.replace(/\s*\*\s*/g, ' '))
  return fields
}

/** The flag given on the command line, and the value it parses to. */
function sample(flag: string, row: AnyFlagRow): [string[], unknown] {
  switch (row.kind) {
    case 'integer': {
      const value = Math.min(row.max ?? 7, 7)
      return [[`--${flag}`, String(value)], value]
    }

    case 'size':
      return [[`--${flag}`, '3k'], 3072]
    case 'duration':
      return [[`--${flag}`, '1h30m'], 5400]
    case 'string':
      return [[`--${flag}`, 'x'], 'x']
    case 'enum':
      return [[`--${flag}`, row.values.at(-1)!], row.values.at(-1)]
    case 'boolean':
      return [[`--${flag}`], true]
    case 'list':
      return [[`--${flag}`, 'a', `--${flag}`, 'b'], ['a', 'b']]
  }
}

describe('the option table', () => {
  it("BusServerOptions' doc comments give the table's defaults", () => {
    const comments = docComments()
    const table = OPTION_TABLE as Record<string, {kind?: string}>
    let checked = 0
    for (const [name, comment] of comments) {
      const stated = /\bDefault:? `?([\w ]+?)`?[.;,]|`(\w+)` \(default\)/.exec(comment)
      if (!stated) continue
      const value = (DEFAULTS as Record<string, unknown>)[name]
      assert.notEqual(value, undefined, `${name}: the comment gives a default, the table none`)
      const shown = table[name].kind === 'size' ? formatSize(value as number) : String(value)
      assert.equal(stated[1] ?? stated[2], shown, `${name}: the comment says ${stated[0]}`)
      checked++
    }

    assert.ok(checked >= 10, `only ${checked} defaults found in the comments`)
  })

  it('every flag comes back as its option, by its name in the table', async () => {
    const rows = flagRows(OPTION_TABLE)
    const {flags} = await Parser.parse(rows.flatMap(({flag, row}) => sample(flag, row)[0]), {flags: Serve.flags})
    const values = flagValues(OPTION_TABLE, flags) as Record<string, unknown>
    for (const {key, flag, row} of rows) assert.deepEqual(values[key], sample(flag, row)[1], key)
  })

  it('flags not given come back as the defaults, and serve-only options are not library defaults', async () => {
    const {flags} = await Parser.parse([], {flags: Serve.flags})
    const values = flagValues(OPTION_TABLE, flags) as Record<string, unknown>
    for (const [key, value] of Object.entries(values)) {
      if (key in DEFAULTS) assert.deepEqual(value, (DEFAULTS as Record<string, unknown>)[key], key)
    }

    for (const key of ['verbose', 'hashPassword', 'certFile', 'keyFile', 'user']) assert.ok(!(key in DEFAULTS), key)
  })
})
