// Times the subscription filters (compileFilter, as the server compiles
// ?type= and ?sender=) on hostile lists against the longest values the
// server lets through. Run as a child process by hostile-filters.test.ts,
// so that a matcher that never finishes can be killed: prints one JSON
// line per case, {name, matches, cpuMs, wallMs}, as each case ends.
import type {Message} from '../../src/lib/bus/message.js'
import {compileFilter} from '../../src/lib/protocol/filter.js'

/** A media type's essence as long as RFC 6838 allows (127 + 1 + 127), and a user name of 255 bytes. */
const LONGEST_TYPE = `${'a'.repeat(127)}/${'a'.repeat(127)}`
const LONGEST_NAME = 'a'.repeat(255)
const times = (count: number, pattern: string): string => Array.from({length: count}, () => pattern).join(',')

/** Patterns of up to 256 characters (the cap), as many to a list as the caps allow (32, 1,024 characters in all), most made to fail late. */
const WORST = {
  'stars: *a*a…*a*b': `${'*a'.repeat(127)}*b`,
  'stars, the last piece missing: *b*a…*a': `*b${'*a'.repeat(127)}`,
  'one long literal: *aaa…ab*': `*${'a'.repeat(253)}b*`,
  'one long ? run: *a?a?…a?ab*': `*${'a?'.repeat(126)}ab*`,
  'one long ? run: *?a?a…?a?b*': `*${'?a'.repeat(126)}?b*`,
  'a ? run at the start, a piece missing: ???…?*b*a': `${'?'.repeat(252)}*b*a`,
  '31-character ? runs: (*a?a?…a?b)×7*': `${`*${'a?'.repeat(15)}b`.repeat(7)}*`,
  'short stars: *a*a…*a*b, 32 characters': `${'*a'.repeat(15)}*b`,
}

/** As many copies of a pattern as one list may hold. */
const fill = (pattern: string): string => times(Math.min(32, Math.floor(1024 / pattern.length)), pattern)

interface Case {
  name: string
  filter: {type?: string; sender?: string}
  message: Message
  matches: number
}

const message = (essence: string, sender?: string): Message => ({id: '1-1', time: 0, channel: 'c', type: essence, essence, sender, body: Buffer.alloc(0)})

const cases: Case[] = [
  {name: "the issue's type=, 10 groups, on text/ and 40 a's", filter: {type: times(10, '*a*a*a*a*a*a*a*a*a*b')}, message: message(`text/${'a'.repeat(40)}`), matches: 2000},
  {name: "the issue's sender=, 10 groups, on 40 a's", filter: {sender: times(10, '*a*a*a*a*a*a*a*a*a*b')}, message: message('text/plain', 'a'.repeat(40)), matches: 2000},
]
for (const [name, pattern] of Object.entries(WORST)) {
  const list = fill(pattern)
  const count = list.split(',').length
  cases.push({name: `type= ${count} × ${name} on a 255-character type`, filter: {type: list}, message: message(LONGEST_TYPE), matches: 200})
  cases.push({name: `sender= ${count} × ${name} on a 255-byte name`, filter: {sender: list}, message: message('text/plain', LONGEST_NAME), matches: 200})
}

const cpuMs = (): number => {
  const {user, system} = process.cpuUsage()
  return (user + system) / 1000
}

for (const item of cases) {
  const filter = compileFilter(item.filter)!
  let passed = 0
  const cpu = cpuMs()
  const wall = performance.now()
  for (let i = 0; i < item.matches; i++) if (filter(item.message)) passed++
  const result = {name: item.name, matches: item.matches, passed, cpuMs: cpuMs() - cpu, wallMs: performance.now() - wall}
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
