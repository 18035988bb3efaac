// The run's random seed, for every test that draws at random: fast-check's
// properties and the tests' own random sizes, pauses and bytes. Loaded
// before the tests (.mocharc.cjs "require"; .mocharc.cjs draws the seed, before --parallel's workers start). A run takes MSGBUS_SEED from
// the environment, or draws one; the closing lines print it
// (test/support/reporter.cjs), fast-check's failures name it, and a failed
// test that drew from randomSource() says it under its error. Replay a run:
//
//   MSGBUS_SEED=1234567 npx mocha test/parser.test.ts
//
// Each randomSource(label) is a stream of its own derived from the seed and
// the label, so one test replays alone (--grep) as it ran among the others.
import fc from 'fast-check'
import {hashSeed, newSeed, seededRandom, type RandomSource} from '../../tools/random.js'

function seedFrom(text: string | undefined): number {
  if (text === undefined || text.trim() === '') return newSeed()
  const seed = Number(text)
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`MSGBUS_SEED: expected a whole number from 0 to 2^32 - 1, got ${JSON.stringify(text)}`)
  return seed
}

export const SEED = seedFrom(process.env.MSGBUS_SEED)
// For the reporter's closing lines, and any child that wants to draw from the same run.
process.env.MSGBUS_SEED = String(SEED)

// Every property of the run starts from the seed (fast-check prints it, and its path, when one fails).
fc.configureGlobal({seed: SEED})

/** How to replay what a test drew at random. */
export const REPLAY = `random seed ${SEED}: replay with MSGBUS_SEED=${SEED}`

let drawn = false

/** A random source of its own for `label`, from the run's seed. */
export function randomSource(label: string): RandomSource {
  drawn = true
  return seededRandom(hashSeed(`${SEED} ${label}`))
}

/** A seed for a child process that draws at random (scripts/fuzz.ts --seed, bench/soak.ts --seed), from the run's. */
export function childSeed(label: string): number {
  drawn = true
  return hashSeed(`${SEED} ${label}`)
}

export const mochaHooks = {
  beforeEach(): void {
    drawn = false
  },
  afterEach(this: Mocha.Context): void {
    const test = this.currentTest
    if (test?.state !== 'failed' || !test.err) return
    // A property that failed (fast-check names the seed; this says how to replay it), or a test that drew from randomSource().
    if (!drawn && !/^Property failed/.test(test.err.message)) return
    const before = test.err.message
    test.err.message = `${before}\n(${REPLAY})`
    if (test.err.stack) test.err.stack = test.err.stack.replace(before, test.err.message)
  },
}
