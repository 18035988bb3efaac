// docs/protocol.md states the defaults of the server's limits in its own
// words; they must be the option table's (src/lib/server/option-table.ts),
// from which the flags, the README and the man page already come.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {OPTION_TABLE} from '../src/lib/server/option-table.js'
import {ROOT} from './support/harness.js'

const UNITS: Record<string, number> = {KiB: 1024, MiB: 1024 * 1024, s: 1, '': 1}

/** The table's rows by their long flag. */
function rowsByFlag(): Map<string, {default?: unknown}> {
  const rows = new Map<string, {default?: unknown}>()
  for (const [key, row] of Object.entries(OPTION_TABLE) as Array<[string, {flag?: string; noFlag?: string; default?: unknown}]>) {
    if (row.noFlag !== undefined) continue
    rows.set(row.flag ?? key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`), row)
  }

  return rows
}

describe('docs/protocol.md', () => {
  it('its table of limits gives each option the default the option table has', () => {
    const text = readFileSync(join(ROOT, 'docs/protocol.md'), 'utf8')
    const section = text.slice(text.indexOf('\n## Limits'), text.indexOf('\n## Clients must accept'))
    const rows = rowsByFlag()
    const checked: string[] = []
    for (const line of section.split('\n')) {
      const cells = line.split('|').slice(1, -1).map((cell) => cell.trim())
      if (cells.length !== 4) continue
      const flag = /^`--([a-z-]+)`(?: \(|$)/.exec(cells[1])?.[1]
      const stated = /^(\d+(?:\.\d+)?) ?(KiB|MiB|s)?\b/.exec(cells[2])
      if (flag === undefined || stated === null) continue
      const row = rows.get(flag)
      assert.ok(row, `docs/protocol.md names --${flag}, which serve does not have`)
      assert.equal(Number(stated[1]) * UNITS[stated[2] ?? ''], row.default, `--${flag}: docs/protocol.md says ${cells[2]}`)
      checked.push(flag)
    }

    // The rows with one option and a stated default: a table that lost them would check nothing.
    assert.ok(checked.length >= 14, `only ${checked.length} limits checked: ${checked.join(', ')}`)
  })
})
