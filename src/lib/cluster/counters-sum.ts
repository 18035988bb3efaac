import type {ServerCounters} from '../server/ops/counters.js'

/**
 * The cluster's counters: the workers' added up, field by field, for the
 * primary's `--stats` line and `/metrics`. Buckets of the latency histogram
 * add up by count; their bounds (`le`) are the same in every worker.
 */
export function sumCounters(all: ServerCounters[]): ServerCounters | undefined {
  if (all.length === 0) return undefined
  return all.reduce((sum, counters) => add(sum, counters) as ServerCounters)
}

function add(a: unknown, b: unknown, key?: string): unknown {
  if (typeof a === 'number' || typeof b === 'number') return key === 'le' ? (a ?? b) : ((a as number) ?? 0) + ((b as number) ?? 0)
  if (Array.isArray(a) || Array.isArray(b)) {
    const left = (a ?? []) as unknown[]
    const right = (b ?? []) as unknown[]
    return Array.from({length: Math.max(left.length, right.length)}, (_, i) => add(left[i], right[i]))
  }

  if (a && typeof a === 'object') {
    const sum: Record<string, unknown> = {...(a as Record<string, unknown>)}
    for (const [name, value] of Object.entries((b ?? {}) as Record<string, unknown>)) sum[name] = add(sum[name], value, name)
    return sum
  }

  return a ?? b
}
