// mocha's spec output, then the run's random seed and the closing line CI reads: "N passed, N failed".
const Mocha = require('mocha')

class Reporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options)
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const {passes, failures, pending} = runner.stats
      // The run's random seed (test/support/random.ts), so that what the tests drew can be drawn again.
      if (process.env.MSGBUS_SEED) process.stdout.write(`random seed ${process.env.MSGBUS_SEED} (replay: MSGBUS_SEED=${process.env.MSGBUS_SEED} npm test)\n`)
      // Skipped tests (a browser that is not installed) on a line of their own: CI reads the last line as it is.
      if (pending) process.stdout.write(`${pending} skipped\n`)
      process.stdout.write(`${passes} passed, ${failures} failed\n`)
    })
  }
}

module.exports = Reporter
