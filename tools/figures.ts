// What the benchmarks make of their samples: medians of rounds (a shared,
// noisy machine makes single runs meaningless) and percentiles of latencies.

/** The median of the finite values; NaN when there are none (a round that measured nothing). */
export function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const middle = sorted.length >> 1
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** The p-th percentile (nearest rank) of values sorted ascending. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** A figure with `digits` decimals; a dash for one not measured. */
export const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : '–')

/** A whole number with thousands separators; a dash for one not measured. */
export const grouped = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–')
