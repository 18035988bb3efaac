/**
 * `npm run bench -- --peer nchan`: every selected scenario against msgbus
 * serve and against nginx+nchan in alternating rounds (msgbus first in odd
 * rounds, nchan first in even ones), so that what the machine does
 * meanwhile falls on both; then, per scenario, each server's medians over
 * the rounds with their spread, and msgbus/nchan ratios: of the medians, and
 * the lowest and highest of the rounds' own ratios (each round's two runs
 * are next to each other in time).
 */
import type {BenchServer} from './nchan.js'
import {fixed, grouped, median} from '../tools/figures.js'

export type ServerKind = BenchServer['kind']

/** What one run of a scenario against one server gave. */
export interface PeerFigures {
  error?: string
  /** Server CPU µs per delivery. */
  perDelivery: number
  deliveriesPerSecond: number
  messagesPerSecond: number
  p99: number
  lossless: boolean
  /** The idle scenario's figure: server RSS per connection, KiB. */
  kibPerConnection: number
  /** test-sub's CPU per delivery, µs: a reader sees whether the tool kept up. */
  subPerDelivery: number
  /** Cores other processes (not the server, not the tools) kept busy over the window: the machine's noise. */
  otherCores: number
}

export interface PeerScenario {
  id: number
  name: string
  idle: boolean
  /** Paced: server CPU per delivery is the figure that compares; flat out (rate 0): deliveries/s. */
  rate: number
  format?: 'sse'
}

/**
 * The load tools' arguments that differ by server. nchan is asked for its
 * streams by Accept (multipart/mixed, or text/event-stream); msgbus by
 * `?format=sse` or nothing. Markers go in the body for nchan: its worker
 * crashes (SIGSEGV, nchan 1.3.6) when a multipart/mixed subscriber is sent a
 * message whose Content-Type is 38 bytes or longer, and a marker in the type
 * makes it about 70; msgbus keeps them in the type, where test-sub's fast
 * path reads them (so msgbus gets the longer publish head and the longer
 * parts). With SSE both have them in the body: the publishes are the same.
 */
export function peerArgs(kind: ServerKind, scenario: PeerScenario): {sub: string[]; pub: string[]} {
  const sse = scenario.format === 'sse'
  if (kind === 'nchan') return {sub: ['--accept', sse ? 'text/event-stream' : 'multipart/mixed'], pub: ['--marker', 'body']}
  return sse ? {sub: ['--format', 'sse'], pub: ['--marker', 'body']} : {sub: [], pub: []}
}

interface Row {
  scenario: PeerScenario
  runs: Record<ServerKind, PeerFigures[]>
}

/** Runs each scenario `rounds` times against both servers, the order turned each round. */
export async function runRounds(
  scenarios: PeerScenario[],
  rounds: number,
  run: (scenario: PeerScenario, kind: ServerKind, round: number) => Promise<PeerFigures>,
): Promise<Row[]> {
  const rows: Row[] = []
  for (const scenario of scenarios) {
    const row: Row = {scenario, runs: {msgbus: [], nchan: []}}
    for (let round = 0; round < rounds; round++) {
      const order: ServerKind[] = round % 2 === 0 ? ['msgbus', 'nchan'] : ['nchan', 'msgbus']
      for (const kind of order) row.runs[kind].push(await run(scenario, kind, round))
    }

    rows.push(row)
  }

  return rows
}

/** `median (lowest–highest)` of one figure over the rounds. */
function spread(values: number[], format: (value: number) => string): string {
  const finite = values.filter(Number.isFinite)
  if (finite.length === 0) return '–'
  if (finite.length === 1) return format(finite[0]!)
  return `${format(median(finite))} (${format(Math.min(...finite))}–${format(Math.max(...finite))})`
}

/** The figure that compares, and whether less is better. */
function headline(scenario: PeerScenario): {key: keyof PeerFigures; label: string; lower: boolean} {
  if (scenario.idle) return {key: 'kibPerConnection', label: 'RSS/connection', lower: true}
  if (scenario.rate > 0) return {key: 'perDelivery', label: 'CPU/delivery', lower: true}
  return {key: 'deliveriesPerSecond', label: 'deliveries/s', lower: false}
}

/** msgbus/nchan: of the medians, and the range of each round's own ratio. */
function ratio(row: Row, key: keyof PeerFigures): string {
  const of = (kind: ServerKind) => row.runs[kind].map((figures) => (figures.error ? Number.NaN : (figures[key] as number)))
  const [ours, theirs] = [of('msgbus'), of('nchan')]
  const perRound = ours.map((value, i) => value / theirs[i]!).filter(Number.isFinite)
  const whole = median(ours) / median(theirs)
  if (!Number.isFinite(whole)) return '–'
  return perRound.length > 1 ? `${whole.toFixed(2)} (${Math.min(...perRound).toFixed(2)}–${Math.max(...perRound).toFixed(2)})` : whole.toFixed(2)
}

export function peerTable(rows: Row[]): string {
  const header = ['#', 'scenario', 'server', 'µs/deliv', 'deliveries/s', 'msg/s', 'p99 ms', 'KiB/conn', 'sub µs/deliv', 'others cores', 'loss', 'msgbus/nchan']
  const lines: string[][] = []
  for (const row of rows) {
    const {scenario} = row
    const main = headline(scenario)
    for (const kind of ['msgbus', 'nchan'] as const) {
      const runs = row.runs[kind]
      const ok = runs.filter((figures) => !figures.error)
      const values = (key: keyof PeerFigures) => ok.map((figures) => figures[key] as number)
      const failed = runs.length - ok.length
      lines.push([
        kind === 'msgbus' ? String(scenario.id) : '',
        kind === 'msgbus' ? scenario.name : '',
        kind,
        scenario.idle ? '–' : spread(values('perDelivery'), (v) => fixed(v, 2)),
        scenario.idle ? '–' : spread(values('deliveriesPerSecond'), grouped),
        scenario.idle ? '–' : spread(values('messagesPerSecond'), grouped),
        scenario.idle ? '–' : spread(values('p99'), (v) => fixed(v, 1)),
        scenario.idle ? spread(values('kibPerConnection'), (v) => fixed(v, 2)) : '–',
        scenario.idle ? '–' : spread(values('subPerDelivery'), (v) => fixed(v, 2)),
        spread(values('otherCores'), (v) => fixed(v, 2)),
        failed > 0 ? `${failed} FAILED: ${runs.find((figures) => figures.error)!.error}` : ok.every((figures) => figures.lossless) ? 'none' : 'LOSS',
        kind === 'msgbus' ? `${main.label} ${ratio(row, main.key)} (${main.lower ? 'below 1: msgbus ahead' : 'above 1: msgbus ahead'})` : '',
      ])
      if (kind === 'nchan' && !scenario.idle) {
        // The other figure's ratio too: a paced scenario's deliveries/s are the rate's, a flat-out one's CPU per delivery still tells.
        const other = main.key === 'perDelivery' ? {key: 'deliveriesPerSecond' as const, label: 'deliveries/s'} : {key: 'perDelivery' as const, label: 'CPU/delivery'}
        lines.at(-1)![11] = `${other.label} ${ratio(row, other.key)}`
      }
    }
  }

  const widths = header.map((title, i) => Math.max(title.length, ...lines.map((line) => line[i]!.length)))
  const left = new Set([1, 2, 10, 11])
  const format = (cells: string[]) => cells.map((cell, i) => (left.has(i) ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd()
  return [format(header), format(widths.map((w) => '─'.repeat(w))), ...lines.map(format)].join('\n')
}
