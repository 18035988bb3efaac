// Times the subscription filters (compileFilter, as the server compiles
// ?type= and ?sender=) on hostile lists against the longest values the
// server lets through. Run as a child process by hostile-filters.test.ts,
// so that a matcher that never finishes can be killed: prints one JSON
// line per case, {name, matches, cpuMs, wallMs}, as each case ends.
import type {Message} from '../../src/lib/bus/message.js'
import {compileFilter} from '../../src/lib/protocol/filter.js'
import {fill, ISSUE_LIST, LONGEST_NAME, LONGEST_TYPE, WORST_PATTERNS} from '../../tools/hostile-patterns.js'


interface Case {
  name: string
  filter: {type?: string; sender?: string}
  message: Message
  matches: number
}

const message = (essence: string, sender?: string): Message => ({id: '1-1', time: 0, serial: 0, channel: 'c', type: essence, essence, sender, body: Buffer.alloc(0)})

const cases: Case[] = [
  {name: "the issue's type=, 10 groups, on text/ and 40 a's", filter: {type: ISSUE_LIST}, message: message(`text/${'a'.repeat(40)}`), matches: 2000},
  {name: "the issue's sender=, 10 groups, on 40 a's", filter: {sender: ISSUE_LIST}, message: message('text/plain', 'a'.repeat(40)), matches: 2000},
]
for (const [name, pattern] of Object.entries(WORST_PATTERNS)) {
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
