import {readFile} from 'node:fs/promises'
import {LoadPublisher, type LoadPublisherOptions} from '../load/publisher.js'
import {pubLine, round, type TestPubReport} from '../load/report.js'
import {reasonOf} from '../util/errors.js'
import {Progress} from './progress.js'

export interface TestPubOptions extends Omit<LoadPublisherOptions, 'body'> {
  file?: string
  intervalSeconds: number
  json: boolean
  output: NodeJS.WritableStream
}

/** `msgbus test-pub`: publishes at the asked rate, reports every interval, and returns the final report. */
export async function testPub(options: TestPubOptions): Promise<TestPubReport> {
  let body: Buffer | undefined
  if (options.file !== undefined) {
    try {
      body = await readFile(options.file)
    } catch (error) {
      throw new Error(`cannot read ${options.file}: ${reasonOf(error)}`, {cause: error})
    }
  }

  const publisher = new LoadPublisher({...options, body})
  const progress = new Progress()
  let last = {at: performance.now(), published: 0}
  const interval = setInterval(() => {
    const now = performance.now()
    const published = publisher.totals.published
    const rate = ((published - last.published) * 1000) / (now - last.at)
    last = {at: now, published}
    progress.update(`${round(rate)} msgs/s | published ${published} errors ${publisher.totals.errors}`)
  }, options.intervalSeconds * 1000)
  try {
    const totals = await publisher.run()
    const report: TestPubReport = {
      published: totals.published,
      errors: totals.errors,
      rate: round(totals.durationSeconds > 0 ? totals.published / totals.durationSeconds : 0),
      duration_s: round(totals.durationSeconds, 2),
      requested_rate: options.rate,
      connections: options.connections,
    }
    if (totals.reasons.length > 0) report.reasons = totals.reasons
    progress.done()
    options.output.write(options.json ? `${JSON.stringify(report)}\n` : `${pubLine(report)}\n`)
    return report
  } finally {
    clearInterval(interval)
  }
}
