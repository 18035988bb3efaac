// The run's random seed is drawn here, before mocha starts its workers
// (--parallel), so that every worker and the closing line share one seed
// (test/support/random.ts reads it).
if (!process.env.MSGBUS_SEED) process.env.MSGBUS_SEED = String(Math.floor(Math.random() * 2 ** 32))

module.exports = {
  'node-option': ['import=tsx/esm'],
  require: ['test/support/random.ts'],
  reporter: './test/support/reporter.cjs',
  timeout: 20000,
  exit: true,
}
