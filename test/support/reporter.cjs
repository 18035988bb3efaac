// mocha's spec output, then the closing line CI reads: "N passed, N failed".
const Mocha = require('mocha')

class Reporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options)
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const {passes, failures, pending} = runner.stats
      // Skipped tests (a browser that is not installed) on a line of their own: CI reads the last line as it is.
      if (pending) process.stdout.write(`${pending} skipped\n`)
      process.stdout.write(`${passes} passed, ${failures} failed\n`)
    })
  }
}

module.exports = Reporter
