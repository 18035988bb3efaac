/**
 * `npm run bench:patterns`: matches per second of subscription filters
 * (compileFilter, src/lib/protocol/filter.ts, as the server compiles
 * `?type=` and `?sender=`), for the common lists and for the worst ones the
 * limits allow (tools/hostile-patterns.ts: as many patterns of up to 256
 * characters of `*`, `?` and a letter as fit in a list) against the longest
 * values (255 characters).
 *
 *     npm run bench:patterns
 *     npm run bench:patterns -- --against /tmp/old/filter.mts   # beside another implementation (common lists only)
 *
 * Each figure is the median of --rounds rounds of about --ms milliseconds of
 * this process's CPU time (less disturbed than wall time by other processes
 * on a shared machine). With --against, the two implementations' rounds
 * alternate, so both see the same machine. It is a script that prints
 * figures, not a test.
 */
import {resolve} from 'node:path'
import {pathToFileURL} from 'node:url'
import {parseArgs} from 'node:util'
import type {Message} from '../src/lib/bus/message.js'
import {compileFilter, type FilterSpec, type MessageFilter} from '../src/lib/protocol/filter.js'
import {exitOnHelp, numberOption} from './args.js'
import {fill, ISSUE_LIST, LONGEST_NAME, LONGEST_TYPE, WORST_PATTERNS} from '../tools/hostile-patterns.js'

type Compile = (spec: FilterSpec) => MessageFilter | undefined

const HELP = `usage: npm run bench:patterns -- [--against FILE] [--rounds N] [--ms N]
  --against FILE   also time a module exporting compileFilter (an older one), on the common lists only:
                   a backtracking matcher would never finish the worst ones
  --rounds N       rounds per figure, the median is printed (default 7)
  --ms N           milliseconds of CPU per round (default 300)
`

const {values: args} = parseArgs({
  options: {
    against: {type: 'string'},
    rounds: {type: 'string'},
    ms: {type: 'string'},
    help: {type: 'boolean', short: 'h', default: false},
  },
})
exitOnHelp(args.help, HELP)
const rounds = numberOption(args.rounds, 'rounds', 7, 1)
const roundMs = numberOption(args.ms, 'ms', 300, 10)
const against = args.against ? ((await import(pathToFileURL(resolve(args.against)).href)) as {compileFilter: Compile}).compileFilter : undefined

const TYPES = ['text/plain', 'image/png', 'application/json', 'image/jpeg', 'text/html', 'multipart/form-data']
const SENDERS = ['alice', 'bob', 'bert', 'mallory', 'Alice', 'robert']

interface Case {
  name: string
  list: string
  /** `type` lists are matched against the messages' media types, `sender` lists against their senders. */
  field: 'type' | 'sender'
  values: string[]
  worst?: boolean
}

const cases: Case[] = [
  {name: 'type=text/*', list: 'text/*', field: 'type', values: TYPES},
  {name: 'type=image/*,text/*', list: 'image/*,text/*', field: 'type', values: TYPES},
  {name: 'type=*,!image/*', list: '*,!image/*', field: 'type', values: TYPES},
  {name: 'type=image/???', list: 'image/???', field: 'type', values: TYPES},
  {name: 'sender=alice', list: 'alice', field: 'sender', values: SENDERS},
  {name: 'sender=b*', list: 'b*', field: 'sender', values: SENDERS},
  {name: 'sender=alice,b*', list: 'alice,b*', field: 'sender', values: SENDERS},
  {name: 'the issue: *a*a*a*a*a*a*a*a*a*b, 10 times', list: ISSUE_LIST, field: 'type', values: [`text/${'a'.repeat(40)}`], worst: true},
]
for (const [name, pattern] of Object.entries(WORST_PATTERNS)) {
  const list = fill(pattern)
  cases.push({name: `${list.split(',').length} × ${name} on the longest type`, list, field: 'type', values: [LONGEST_TYPE], worst: true})
  cases.push({name: `${list.split(',').length} × ${name} on the longest name`, list, field: 'sender', values: [LONGEST_NAME], worst: true})
}

const cpuMs = (): number => {
  const {user, system} = process.cpuUsage()
  return (user + system) / 1000
}

function messageOf(field: Case['field'], value: string): Message {
  const essence = field === 'type' ? value : 'text/plain'
  return {id: '1-1', time: 0, serial: 0, channel: 'bench', type: essence, essence, sender: field === 'sender' ? value : 'x', body: Buffer.alloc(0)}
}

type Round = (filter: MessageFilter, messages: Message[], ms: number, clock: () => number) => number

/**
 * A fresh copy of the timing loop (matches per second over one round): each
 * filter gets its own, so the call site `filter(message)` learns one
 * filter's shape and not a mix of all the cases before it.
 */
function freshRound(): Round {
  // eslint-disable-next-line no-new-func
  return new Function(
    'filter',
    'messages',
    'ms',
    'clock',
    `let count = 0, sink = 0, elapsed = 0
     const started = clock()
     while (elapsed < ms) {
       for (let batch = 0; batch < 100; batch++) for (let i = 0; i < messages.length; i++) if (filter(messages[i])) sink++
       count += 100 * messages.length
       elapsed = clock() - started
     }
     return sink < 0 ? 0 : (count / elapsed) * 1000`,
  ) as Round
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const format = (rate: number): string => (rate >= 1e6 ? `${(rate / 1e6).toFixed(2)} M` : `${Math.round(rate / 1e3).toLocaleString('en')} k`)

console.log(`median of ${rounds} rounds of ${roundMs} ms of CPU${against ? `; beside ${args.against}, rounds alternating` : ''}`)
for (const item of cases) {
  const messages = item.values.map((value) => messageOf(item.field, value))
  const contenders: Array<{filter: MessageFilter; round: Round; rates: number[]}> = [{filter: compileFilter({[item.field]: item.list})!, round: freshRound(), rates: []}]
  if (against && !item.worst) contenders.push({filter: against({[item.field]: item.list})!, round: freshRound(), rates: []})
  for (let round = 0; round < rounds; round++) {
    for (const contender of contenders) contender.rates.push(contender.round(contender.filter, messages, roundMs, cpuMs))
  }

  const [ours, theirs] = contenders.map((contender) => median(contender.rates))
  const line = `${item.name.padEnd(44)} ${format(ours).padStart(9)} matches/s (${(1e6 / ours).toFixed(3)} µs each)`
  console.log(theirs === undefined ? line : `${line}   against ${format(theirs).padStart(9)}/s: ×${(ours / theirs).toFixed(2)}`)
}
