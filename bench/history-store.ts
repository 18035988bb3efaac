/**
 * `npm run bench:history-store`: the history on disk (`--history-dir`,
 * src/lib/history/segment-store.ts).
 *
 * 1. Start-up. A folder holding 1 GiB of history (64 MiB segments of
 *    messages with 6 KiB bodies, one every 10 ms, all within the last hour),
 *    of which the default limits keep the newest 10,000 (~59 MiB), against a
 *    folder holding only those 10,000: the time of SegmentStore.open() on
 *    each, and how much of the folder it read. Then, for scale, the time to
 *    read and decode every file of the 1 GiB (what a start-up that read all
 *    of it would pay). Each run opens a fresh copy of the folder made of
 *    hard links (open() deletes the segments it does not keep). The files
 *    were just written, so they are in the page cache: these are warm
 *    figures; a cold disk adds its read time to the bytes read.
 * 2. Appends. For each --history-sync policy, 64 B and 4 KiB bodies, and 1
 *    and 32 publishers (each appends, waits for its promise, appends
 *    again: a publish's 204 waits so): appends per second and fdatasync
 *    calls per second, over --seconds of appending.
 *
 * Prints the median of --runs runs of each. It is a script that prints
 * figures, not a test: it exits non-zero only when a case could not run.
 * Its temporary folders (about 1.2 GiB) are removed at the end, or on ^C.
 *
 *     npm run bench:history-store
 *     npm run bench:history-store -- --runs 5 --seconds 3 --publishers 1,8,64 --gib 2
 *     npm run bench:history-store -- --no-startup        (appends only)
 *     npm run bench:history-store -- --dir /mnt/ssd      (where the temporary folders go)
 */
import {linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {parseArgs} from 'node:util'
import {MessageIdGenerator} from '../src/lib/bus/message-id.js'
import type {Message} from '../src/lib/bus/message.js'
import {decodeRecords, encodeHeader, encodeRecord} from '../src/lib/history/record.js'
import {SEGMENT_BYTES, SegmentStore} from '../src/lib/history/segment-store.js'
import {segmentName} from '../src/lib/history/segment-file.js'
import type {HistorySync} from '../src/lib/history/store.js'
import {silentLogger} from '../src/lib/server/ops/log.js'
import {DEFAULTS} from '../src/lib/server/options.js'
import {numberOption, UsageError} from './args.js'

const USAGE = `usage: npm run bench:history-store -- [--runs N] [--seconds S] [--publishers 1,32] [--gib G] [--no-startup] [--no-appends] [--dir DIR]
  --runs N          runs of each case (default 3); the median is printed
  --seconds S       seconds of appending in each run (default 3)
  --publishers L    numbers of publishers, comma-separated (default 1,32)
  --gib G           GiB of history in the large folder (default 1)
  --no-startup      skip the start-up figures
  --no-appends      skip the append figures
  --dir DIR         where the temporary folders go (default ${tmpdir()})
`

const MiB = 1024 * 1024
/** The default limits of msgbus serve. */
const LIMITS = {count: DEFAULTS.history, bytes: DEFAULTS.historyBytes, ageMs: DEFAULTS.historyAge * 1000}
const STARTUP_BODY = 6 * 1024
const STEP_MS = 10

function parse() {
  const {values} = parseArgs({
    options: {
      runs: {type: 'string'},
      seconds: {type: 'string'},
      publishers: {type: 'string'},
      gib: {type: 'string'},
      'no-startup': {type: 'boolean', default: false},
      'no-appends': {type: 'boolean', default: false},
      dir: {type: 'string'},
      help: {type: 'boolean', short: 'h', default: false},
    },
  })
  if (values.help) {
    process.stdout.write(USAGE)
    process.exit(0)
  }

  return {
    runs: numberOption(values.runs, 'runs', 3, 1),
    seconds: numberOption(values.seconds, 'seconds', 3, 0.1, false),
    publishers: (values.publishers ?? '1,32').split(',').map((text) => numberOption(text, 'publishers', 1, 1)),
    gib: numberOption(values.gib, 'gib', 1, 0.01, false),
    startup: !values['no-startup'],
    appends: !values['no-appends'],
    dir: values.dir ?? tmpdir(),
  }
}

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`

function message(id: string, time: number, body: Buffer): Message {
  return {id, time, serial: 0, channel: 'bench', type: 'application/octet-stream', essence: 'application/octet-stream', body}
}

/**
 * Writes `count` messages, one every STEP_MS up to now, into segments of
 * SEGMENT_BYTES as the store would have (written here directly: the store
 * would take as long as the disk, for no figure).
 */
function writeHistory(dir: string, count: number, end: number): void {
  mkdirSync(dir, {recursive: true})
  const body = Buffer.alloc(STARTUP_BODY, 'm')
  const first = end - count * STEP_MS
  let after = `${first}-0`
  let pieces: Buffer[] = [encodeHeader({after})]
  let size = pieces[0].length
  const flush = () => writeFileSync(join(dir, segmentName(after)), Buffer.concat(pieces, size))
  for (let i = 1; i <= count; i++) {
    const ms = first + i * STEP_MS
    const record = encodeRecord(message(`${ms}-0`, ms, body))
    pieces.push(record)
    size += record.length
    if (size >= SEGMENT_BYTES) {
      flush()
      after = `${ms}-0`
      pieces = [encodeHeader({after})]
      size = pieces[0].length
    }
  }

  if (pieces.length > 1) flush()
}

function folderBytes(dir: string): {files: number; bytes: number} {
  const names = readdirSync(dir).filter((name) => name.endsWith('.seg'))
  return {files: names.length, bytes: names.reduce((sum, name) => sum + statSync(join(dir, name)).size, 0)}
}

/** A copy of `master` made of hard links, for open() to delete from. */
function linkCopy(master: string, copy: string): void {
  mkdirSync(copy)
  for (const name of readdirSync(master)) linkSync(join(master, name), join(copy, name))
}

async function startup(root: string, runs: number, gib: number): Promise<void> {
  const now = Date.now()
  const large = join(root, 'large')
  const kept = join(root, 'kept')
  const perMessage = encodeRecord(message(`${now}-0`, now, Buffer.alloc(STARTUP_BODY))).length
  const started = performance.now()
  writeHistory(large, Math.floor((gib * 1024 * MiB) / perMessage), now)
  writeHistory(kept, LIMITS.count, now)
  const sizes = {large: folderBytes(large), kept: folderBytes(kept)}
  console.log(
    `start-up: ${mib(sizes.large.bytes)} in ${sizes.large.files} segments vs ${mib(sizes.kept.bytes)} in ${sizes.kept.files}, ` +
      `${STARTUP_BODY} B bodies, limits ${LIMITS.count} messages / ${mib(LIMITS.bytes)} / ${LIMITS.ageMs / 1000} s (written in ${((performance.now() - started) / 1000).toFixed(1)} s)`,
  )

  for (const [label, master] of [
    [`${gib} GiB folder`, large],
    ['only what is kept', kept],
  ] as const) {
    const times: number[] = []
    let recovered = 0
    let read = {files: 0, bytes: 0}
    for (let run = 0; run < runs; run++) {
      const copy = join(root, `run-${label.replace(/\W+/g, '-')}-${run}`)
      linkCopy(master, copy)
      const store = new SegmentStore(copy, 'never', silentLogger)
      const begun = performance.now()
      const result = await store.open(LIMITS, Date.now())
      times.push(performance.now() - begun)
      await store.close()
      recovered = result.messages.length
      // What is left is what open() read: the segments it did not keep went unread.
      read = folderBytes(copy)
      rmSync(copy, {recursive: true, force: true})
    }

    console.log(
      `  open(), ${label.padEnd(18)} ${median(times).toFixed(0).padStart(6)} ms   ${recovered} messages back; read ${read.files} segments, ${mib(read.bytes)}` +
        `   runs: ${times.map((t) => t.toFixed(0)).join(' ')} ms`,
    )
  }

  const times: number[] = []
  let messages = 0
  for (let run = 0; run < runs; run++) {
    const begun = performance.now()
    messages = 0
    for (const name of readdirSync(large).sort()) messages += decodeRecords(await readFile(join(large, name))).records.length - 1
    times.push(performance.now() - begun)
  }

  console.log(
    `  for scale: every file of the ${gib} GiB folder read and decoded ${median(times).toFixed(0).padStart(6)} ms   ${messages} messages` +
      `   runs: ${times.map((t) => t.toFixed(0)).join(' ')} ms`,
  )
}

/** One run: `publishers` loops appending for `seconds`; appends and fdatasyncs per second. */
async function appendRun(dir: string, sync: HistorySync, bodySize: number, publishers: number, seconds: number): Promise<{appends: number; syncs: number}> {
  const store = new SegmentStore(dir, sync, silentLogger)
  await store.open(LIMITS, Date.now())
  const ids = new MessageIdGenerator()
  const body = Buffer.alloc(bodySize, 'b')
  let appends = 0
  const syncsBefore = store.syncs
  const begun = performance.now()
  const deadline = begun + seconds * 1000
  const publisher = async () => {
    while (performance.now() < deadline) {
      await store.append(message(ids.next(), Date.now(), body))
      appends++
    }
  }

  await Promise.all(Array.from({length: publishers}, publisher))
  const elapsed = (performance.now() - begun) / 1000
  const syncs = store.syncs - syncsBefore
  await store.close()
  return {appends: appends / elapsed, syncs: syncs / elapsed}
}

async function appendFigures(root: string, runs: number, seconds: number, publisherCounts: number[]): Promise<void> {
  console.log(`appends: ${seconds} s a run, ${runs} runs, medians; each publisher waits for its append before the next`)
  // `never` last: the page cache it fills is written back meanwhile, and would slow the syncs of the others.
  for (const sync of ['always', 'interval', 'never'] as const) {
    for (const bodySize of [64, 4096]) {
      for (const publishers of publisherCounts) {
        const results: Array<{appends: number; syncs: number}> = []
        for (let run = 0; run < runs; run++) {
          const dir = join(root, `appends-${sync}-${bodySize}-${publishers}-${run}`)
          try {
            results.push(await appendRun(dir, sync, bodySize, publishers, seconds))
          } finally {
            rmSync(dir, {recursive: true, force: true})
          }
        }

        const appends = median(results.map((r) => r.appends))
        const syncs = median(results.map((r) => r.syncs))
        const perSync = syncs > 0 ? `${(appends / syncs).toFixed(1)} appends a sync` : ''
        console.log(
          `  ${sync.padEnd(8)} ${`${bodySize} B`.padStart(6)} ${String(publishers).padStart(3)} publishers  ${appends.toFixed(0).padStart(8)} appends/s  ${syncs.toFixed(1).padStart(6)} fdatasync/s  ${perSync}`,
        )
      }
    }
  }
}

async function main(): Promise<void> {
  let options: ReturnType<typeof parse>
  try {
    options = parse()
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof TypeError)) throw error
    process.stderr.write(`bench:history-store: ${error.message}\n${USAGE}`)
    process.exit(2)
  }

  const root = mkdtempSync(join(options.dir, 'msgbus-bench-history-'))
  const cleanUp = () => rmSync(root, {recursive: true, force: true})
  process.once('SIGINT', () => {
    cleanUp()
    process.exit(130)
  })
  console.log(`bench:history-store: node ${process.version}, temporary folder ${root}`)
  try {
    if (options.startup) await startup(root, options.runs, options.gib)
    if (options.appends) await appendFigures(root, options.runs, options.seconds, options.publishers)
  } finally {
    cleanUp()
  }
}

await main()
