// Runs scripts/fuzz.ts for a short budget against the built CLI (needs dist/):
// random and mutated requests over raw TCP while well-behaved clients check
// that the server stays up, answers, delivers in order and leaks no connections.
// Its seed comes from the run's (MSGBUS_SEED, test/support/random.ts), so a
// failure replays: the same MSGBUS_SEED, or `npm run fuzz -- --seed S` with
// the seed it prints (timing aside).
import assert from 'node:assert/strict'
import {ROOT, run} from './support/harness.js'
import {childSeed} from './support/random.js'

describe('fuzzing msgbus serve @slow', () => {
  it('survives 8 s of random and mutated requests (scripts/fuzz.ts --seconds 8)', async function () {
    this.timeout(90_000)
    const seed = childSeed('fuzz')
    const result = await run(process.execPath, ['--import', 'tsx/esm', `${ROOT}scripts/fuzz.ts`, '--seconds', '8', '--seed', String(seed)], {timeoutMs: 85_000})
    assert.equal(result.code, 0, `fuzz failed (exit ${result.code}, signal ${result.signal}; seed ${seed}):\n${result.stdout}\n${result.stderr}`)
    // The seed (and what was thrown), so a run can be replayed.
    console.log(result.stdout.trim().split('\n').map((line) => `      ${line}`).join('\n'))
  })
})
