// `npm run bench`: every benchmark of the bus in one run, one after the
// other, each in its own process so none inherits another's heap or warm
// caches: the fan-out scenarios (bench/fanout.ts), then what the history
// costs and how fast it replays (bench/history.ts), then the history's
// files (bench/history-store.ts). Arguments go to the fan-out benchmark,
// as they always did (`npm run bench -- --scenarios 1,3`); `--only` picks
// benchmarks (`--only history,history-store`); with `--peer` only the
// fan-out runs, unless --only says otherwise.
import {spawnSync} from 'node:child_process'
import {fileURLToPath} from 'node:url'

const BENCHMARKS = ['fanout', 'history', 'history-store'] as const
type Benchmark = (typeof BENCHMARKS)[number]

function split(argv: string[]): {only: Benchmark[]; rest: string[]} {
  const rest: string[] = []
  let only: Benchmark[] = [...BENCHMARKS]
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = arg.startsWith('--only=') ? arg.slice('--only='.length) : arg === '--only' ? argv[++i] : undefined
    if (value === undefined) {
      rest.push(arg)
      continue
    }

    const names = value.split(',').filter(Boolean)
    const unknown = names.filter((name) => !(BENCHMARKS as readonly string[]).includes(name))
    if (unknown.length > 0 || names.length === 0) {
      process.stderr.write(`bench: --only ${JSON.stringify(value)}: known benchmarks are ${BENCHMARKS.join(', ')}\n`)
      process.exit(2)
    }

    only = names as Benchmark[]
  }

  return {only, rest}
}

const parsed = split(process.argv.slice(2))
const rest = parsed.rest
// The peer comparison (--peer nchan) is the fan-out benchmark's: the history has no counterpart there.
const peer = rest.some((arg) => arg === '--peer' || arg.startsWith('--peer='))
const only = peer && !process.argv.some((arg) => arg === '--only' || arg.startsWith('--only=')) ? (['fanout'] as Benchmark[]) : parsed.only
if (rest.includes('--help') || rest.includes('-h')) {
  process.stdout.write(`npm run bench [-- [--only ${BENCHMARKS.join(',')}] [fanout options]]\n\nRuns ${BENCHMARKS.map((b) => `bench/${b}.ts`).join(', ')} in turn; the options go to bench/fanout.ts (its --help follows).\n\n`)
}

let failed = 0
let built = false
for (const name of only) {
  const script = fileURLToPath(new URL(`./${name}.ts`, import.meta.url))
  // The first one that builds does so for all: the others reuse dist/.
  const args = name === 'fanout' ? rest : name === 'history' && built ? ['--no-build'] : []
  process.stdout.write(`\n===== bench/${name}.ts ${args.join(' ')}\n`)
  const run = spawnSync(process.execPath, ['--import', 'tsx/esm', script, ...args], {stdio: 'inherit'})
  if (name !== 'history-store') built ||= !rest.includes('--no-build')
  if (run.status !== 0) failed++
  if (rest.includes('--help') || rest.includes('-h')) break
}

process.exit(failed > 0 ? 1 : 0)
