/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per
 * function, heaviest first, with where it lives. Usable on its own:
 * `node --import tsx/esm bench/profile.ts FILE.cpuprofile [TOP]`.
 */
import {readFileSync} from 'node:fs'
import {basename} from 'node:path'
import {fileURLToPath} from 'node:url'

interface ProfileNode {
  id: number
  callFrame: {functionName: string; url: string; lineNumber: number}
  hitCount?: number
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples?: number[]
  timeDeltas?: number[]
}

export interface ProfileEntry {
  name: string
  where: string
  selfMs: number
}

export interface ProfileSummary {
  totalMs: number
  idleMs: number
  entries: ProfileEntry[]
  /** Self time by origin: the project's dist/, node: internals, node_modules, V8/native. */
  byOrigin: Record<string, number>
}

function origin(url: string, name: string): string {
  if (url.includes('/dist/')) return 'msgbus (dist/)'
  if (url.startsWith('node:')) return 'node: internals'
  if (url.includes('/node_modules/')) return 'node_modules'
  if (name === '(garbage collector)') return 'garbage collector'
  if (name === '(program)') return 'native (program)'
  return url === '' ? 'native / V8' : 'other'
}

export function summarize(path: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<number, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  // timeDeltas[i] is the time before sample i; attribute each interval to the sample that ends it.
  for (let i = 0; i < samples.length; i++) self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + Math.max(0, deltas[i] ?? 0))

  const grouped = new Map<string, ProfileEntry>()
  const byOrigin: Record<string, number> = {}
  let totalMs = 0
  let idleMs = 0
  for (const [id, micros] of self) {
    const node = byId.get(id)!
    const {functionName, url, lineNumber} = node.callFrame
    const name = functionName || '(anonymous)'
    const ms = micros / 1000
    totalMs += ms
    if (name === '(idle)') {
      idleMs += ms
      continue
    }

    const file = url.startsWith('node:') ? url : url ? basename(url.replace(/^file:\/\//, '')) : ''
    const where = file ? `${file}:${lineNumber + 1}` : ''
    const key = `${name}\u0000${where}`
    const entry = grouped.get(key) ?? {name, where, selfMs: 0}
    entry.selfMs += ms
    grouped.set(key, entry)
    const o = origin(url, name)
    byOrigin[o] = (byOrigin[o] ?? 0) + ms
  }

  return {totalMs, idleMs, entries: [...grouped.values()].sort((a, b) => b.selfMs - a.selfMs), byOrigin}
}

export function formatSummary(summary: ProfileSummary, top = 20): string {
  const busy = summary.totalMs - summary.idleMs
  const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1).padStart(5)} %`
  const lines = [`  busy ${(busy / 1000).toFixed(2)} s of ${(summary.totalMs / 1000).toFixed(2)} s sampled; self time, share of busy:`]
  for (const entry of summary.entries.slice(0, top)) {
    lines.push(`  ${pct(entry.selfMs)}  ${(entry.selfMs / 1000).toFixed(2).padStart(6)} s  ${entry.name}  ${entry.where}`)
  }

  lines.push('  by origin:')
  for (const [name, ms] of Object.entries(summary.byOrigin).sort((a, b) => b[1] - a[1])) {
    lines.push(`  ${pct(ms)}  ${(ms / 1000).toFixed(2).padStart(6)} s  ${name}`)
  }

  return lines.join('\n')
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2]
  if (!file) {
    process.stderr.write('usage: node --import tsx/esm bench/profile.ts FILE.cpuprofile [TOP]\n')
    process.exit(2)
  }

  process.stdout.write(formatSummary(summarize(file), Number(process.argv[3] ?? 20)) + '\n')
}
