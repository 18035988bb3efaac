/**
 * `npm run bench:patterns`: matches per second of subscription filters
 * (compileFilter, src/lib/protocol/filter.ts, as the server compiles
 * `?type=` and `?sender=`), for the common lists and for the worst ones the
 * limits allow (32 patterns of 256 characters, of `*`, `?` and a letter)
 * against the longest values (255 characters).
 *
 *     npm run bench:patterns
 *     npm run bench:patterns -- --module /tmp/old/filter.mts --common-only   # another implementation, same figures
 *
 * Each figure is the median of --rounds rounds of about --ms milliseconds of
 * this process's CPU time (less disturbed than wall time by other processes
 * on a shared machine). It is a script that prints figures, not a test.
 */
import {resolve} from 'node:path'
import {pathToFileURL} from 'node:url'
import {parseArgs} from 'node:util'
import {exitOnHelp, numberOption} from './args.js'

import type {Message} from '../src/lib/bus/message.js'
import type {FilterSpec, MessageFilter} from '../src/lib/protocol/filter.js'

type Compile = (spec: FilterSpec) => MessageFilter | undefined

const HELP = `usage: npm run bench:patterns -- [--module FILE] [--common-only] [--rounds N] [--ms N]
  --module FILE    a module exporting compileFilter (default: src/lib/protocol/filter.ts)
  --common-only    skip the worst-case lists (a regular-expression matcher would not finish them)
  --rounds N       rounds per figure, the median is printed (default 5)
  --ms N           milliseconds per round (default 300)
`

const {values: args} = parseArgs({
  options: {
    module: {type: 'string'},
    'common-only': {type: 'boolean', default: false},
    rounds: {type: 'string'},
    ms: {type: 'string'},
    help: {type: 'boolean', short: 'h', default: false},
  },
})
exitOnHelp(args.help, HELP)
const rounds = numberOption(args.rounds, 'rounds', 5, 1)
const roundMs = numberOption(args.ms, 'ms', 300, 10)
const modulePath = args.module ? pathToFileURL(resolve(args.module)).href : '../src/lib/protocol/filter.js'
const {compileFilter} = (await import(modulePath)) as {compileFilter: Compile}

const TYPES = ['text/plain', 'image/png', 'application/json', 'image/jpeg', 'text/html', 'multipart/form-data']
const SENDERS = ['alice', 'bob', 'bert', 'mallory', 'Alice', 'robert']
const LONG_TYPE = `text/${'a'.repeat(250)}`
const LONG_NAME = 'a'.repeat(255)
const list32 = (pattern: string): string => Array.from({length: 32}, () => pattern).join(',')

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
  {name: 'the issue: *a*a*a*a*a*a*a*a*a*b, 10 times', list: Array.from({length: 10}, () => '*a*a*a*a*a*a*a*a*a*b').join(','), field: 'type', values: [`text/${'a'.repeat(40)}`], worst: true},
  {name: '32 × *a*a…*a*b (256) on text/a…', list: list32(`${'*a'.repeat(127)}*b`), field: 'type', values: [LONG_TYPE], worst: true},
  {name: '32 × *b*a…*a (256) on a…', list: list32(`*b${'*a'.repeat(127)}`), field: 'sender', values: [LONG_NAME], worst: true},
  {name: '32 × *a?a?…a?ab* (256) on a…', list: list32(`*${'a?'.repeat(126)}ab*`), field: 'sender', values: [LONG_NAME], worst: true},
  {name: '32 × *?a?a…?b* (256) on a…', list: list32(`*${'?a'.repeat(126)}?b*`), field: 'sender', values: [LONG_NAME], worst: true},
  {name: '32 × *a…ab* (256) on a…', list: list32(`*${'a'.repeat(253)}b*`), field: 'sender', values: [LONG_NAME], worst: true},
  {name: '32 × *a?a?…a?b* (32) on a…', list: list32(`*${'a?'.repeat(15)}b*`), field: 'sender', values: [LONG_NAME], worst: true},
  {name: '32 × *a*?…?b (256) on a…', list: list32(`*a*${'?'.repeat(252)}b`), field: 'sender', values: [LONG_NAME], worst: true},
]

const cpuMs = (): number => {
  const {user, system} = process.cpuUsage()
  return (user + system) / 1000
}

function messageOf(field: Case['field'], value: string): Message {
  return {id: '1-1', time: 0, channel: 'bench', type: field === 'type' ? value : 'text/plain', essence: field === 'type' ? value : 'text/plain', sender: field === 'sender' ? value : 'x', body: Buffer.alloc(0)}
}

function measure(test: MessageFilter, messages: Message[]): number {
  const rates: number[] = []
  for (let round = 0; round < rounds; round++) {
    let count = 0
    let sink = 0
    const started = cpuMs()
    let elapsed = 0
    while (elapsed < roundMs) {
      for (let batch = 0; batch < 100; batch++) {
        for (const message of messages) if (test(message)) sink++
      }

      count += 100 * messages.length
      elapsed = cpuMs() - started
    }

    if (sink < 0) console.log(sink)
    rates.push((count / elapsed) * 1000)
  }

  return rates.sort((a, b) => a - b)[Math.floor(rates.length / 2)]
}

const format = (rate: number): string => (rate >= 1e6 ? `${(rate / 1e6).toFixed(2)} M` : `${Math.round(rate / 1e3).toLocaleString('en')} k`)

console.log(`module: ${args.module ?? 'src/lib/protocol/filter.ts'}; median of ${rounds} rounds of ${roundMs} ms of CPU`)
for (const item of cases) {
  if (item.worst && args['common-only']) continue
  const test = compileFilter({[item.field]: item.list})!
  const rate = measure(test, item.values.map((value) => messageOf(item.field, value)))
  console.log(`${item.name.padEnd(48)} ${format(rate).padStart(9)} matches/s  (${(1e6 / rate).toFixed(3)} µs each)`)
}
