import type {LatencySummary} from './latency.js'
import type {Window} from './tally.js'

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
  rate: number
  bytes: number
  latency_ms: LatencySummary
  cpu_s: number
  duration_s: number
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

export function subReport(window: Window, requested: number, connected: number, failed: number, seconds: number, reasons: string[]): TestSubReport {
  const report: TestSubReport = {
    connections: {requested, connected, failed},
    received: window.received,
    lost: window.lost,
    duplicates: window.duplicates,
    out_of_order: window.outOfOrder,
    reconnects: window.reconnects,
    recovered: window.recovered,
    gaps: window.gaps,
    rate: round(seconds > 0 ? window.received / seconds : 0),
    bytes: window.bytes,
    latency_ms: window.latency.summary(),
    cpu_s: cpuSeconds(),
    duration_s: round(seconds, 2),
  }
  if (reasons.length > 0) report.errors = reasons
  return report
}

/** One line for an interval or the end: everything a reader needs to trust the figures, the tool's own CPU included. */
export function subLine(report: TestSubReport): string {
  const {connections: c, latency_ms: l} = report
  const mb = report.duration_s > 0 ? report.bytes / 1048576 / report.duration_s : 0
  return (
    `connected ${c.connected}/${c.requested} failed ${c.failed} | ${report.rate} msgs/s ${mb.toFixed(2)} MB/s | ` +
    `lost ${report.lost} dup ${report.duplicates} ooo ${report.out_of_order} | ` +
    `latency ms p50 ${l.p50} p90 ${l.p90} p99 ${l.p99} max ${l.max} | reconnects ${report.reconnects} recovered ${report.recovered} gaps ${report.gaps} | cpu ${report.cpu_s} s`
  )
}

export function pubLine(report: TestPubReport): string {
  return `published ${report.published} errors ${report.errors} | ${report.rate} msgs/s over ${report.duration_s} s | cpu ${cpuSeconds()} s`
}
