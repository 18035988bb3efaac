import type {LatencySummary} from './latency.js'
import type {Window} from './tally.js'
import {plural} from '../util/plural.js'

/** test-sub's final document (`--json`); the keys are documented in the README. */
export interface TestSubReport {
  connections: {requested: number; connected: number; failed: number}
  received: number
  lost: number
  duplicates: number
  out_of_order: number
  reconnects: number
  recovered: number
  gaps: number
  /** Messages/s received over window_s (over the interval, in a progress report). */
  rate: number
  bytes: number
  latency_ms: LatencySummary
  cpu_s: number
  duration_s: number
  /** From the first message received to the last: the publishing window, without the idle time before and after. */
  window_s: number
  /** How test-sub read its subscriptions (the final report only): `native reader, io_uring`, `native reader, recv(2) a socket (why)`, `Node (why)`. */
  reads?: string
  errors?: string[]
}

/** test-pub's final document (`--json`). */
export interface TestPubReport {
  published: number
  errors: number
  rate: number
  duration_s: number
  requested_rate: number
  connections: number
  reasons?: string[]
}

export function cpuSeconds(usage: NodeJS.CpuUsage = process.cpuUsage()): number {
  return round((usage.user + usage.system) / 1e6, 3)
}

export function round(value: number, digits = 1): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

/**
 * test-sub's figures over `window`. For the final report (`seconds` the whole
 * run), the rate is over the publishing window, first message received to
 * last, so a run that waited for test-pub to start, or kept listening after
 * it stopped, still shows the rate messages came at; an interval report
 * (`over: 'interval'`) gives the rate over its interval, idle or not.
 */
export function subReport(window: Window, requested: number, connected: number, failed: number, seconds: number, reasons: string[], over: 'window' | 'interval' = 'window'): TestSubReport {
  const windowSeconds = window.lastMicros > window.firstMicros ? (window.lastMicros - window.firstMicros) / 1e6 : 0
  const rateSeconds = over === 'window' ? windowSeconds : seconds
  const report: TestSubReport = {
    connections: {requested, connected, failed},
    received: window.received,
    lost: window.lost,
    duplicates: window.duplicates,
    out_of_order: window.outOfOrder,
    reconnects: window.reconnects,
    recovered: window.recovered,
    gaps: window.gaps,
    rate: round(rateSeconds > 0 ? window.received / rateSeconds : 0),
    bytes: window.bytes,
    latency_ms: window.latency.summary(),
    cpu_s: cpuSeconds(),
    duration_s: round(seconds, 2),
    window_s: round(windowSeconds, 3),
  }
  if (reasons.length > 0) report.errors = reasons
  return report
}

function megabytesPerSecond(bytes: number, seconds: number): string {
  return (seconds > 0 ? bytes / 1048576 / seconds : 0).toFixed(2)
}

/** One line per interval: everything a reader needs to trust the figures, the tool's own CPU included. */
export function subLine(report: TestSubReport): string {
  const {connections: c, latency_ms: l} = report
  return (
    `connected ${c.connected}/${c.requested} failed ${c.failed} | ${report.rate} msg/s ${megabytesPerSecond(report.bytes, report.duration_s)} MB/s | ` +
    `lost ${report.lost} dup ${report.duplicates} ooo ${report.out_of_order} | ` +
    `latency ms p50 ${l.p50} p90 ${l.p90} p99 ${l.p99} max ${l.max} | reconnects ${report.reconnects} recovered ${report.recovered} gaps ${report.gaps} | cpu ${report.cpu_s} s`
  )
}

/** The final summary: a block that starts with `total:`, unlike the interval lines, with rates over the publishing window. */
export function subSummary(report: TestSubReport): string {
  const {connections: c, latency_ms: l} = report
  const window =
    report.window_s > 0
      ? `${report.rate} msg/s, ${megabytesPerSecond(report.bytes, report.window_s)} MB/s from the first message to the last (${report.window_s} s)`
      : 'no rate (fewer than two messages, or all at once)'
  return [
    `total: ${plural(report.received, 'msg')} received (${plural(report.bytes, 'byte')}) in ${report.duration_s} s, ${c.connected}/${c.requested} connected, ${c.failed} failed`,
    `  rate: ${window}`,
    `  lost ${report.lost}, duplicates ${report.duplicates}, out of order ${report.out_of_order}, reconnects ${report.reconnects}, recovered ${report.recovered}, gaps ${report.gaps}`,
    `  latency ms: p50 ${l.p50} p90 ${l.p90} p99 ${l.p99} max ${l.max}`,
    `  cpu: ${report.cpu_s} s${report.reads ? ` (reads: ${report.reads})` : ''}`,
  ].join('\n')
}

/** test-pub's interval line. */
export function pubLine(rate: number, published: number, errors: number): string {
  return `${round(rate)} msg/s | published ${plural(published, 'msg')}, ${plural(errors, 'error')}`
}

/** test-pub's final summary, `total:` first, unlike its interval lines. */
export function pubSummary(report: TestPubReport): string {
  return `total: published ${plural(report.published, 'msg')}, ${plural(report.errors, 'error')}, ${report.rate} msg/s over ${report.duration_s} s | cpu ${cpuSeconds()} s`
}
