// mocha's spec output, then the closing line CI reads: "N passed, N failed".
const Mocha = require('mocha')

class Reporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options)
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const {passes, failures, pending} = runner.stats
      process.stdout.write(`${passes} passed, ${failures} failed${pending ? `, ${pending} skipped` : ''}\n`)
    })
  }
}

module.exports = Reporter
