import {readFile} from 'node:fs/promises'
import {LoadPublisher, type LoadPublisherOptions} from '../load/publisher.js'
import {pubLine, pubSummary, round, type TestPubReport} from '../load/report.js'
import {reasonOf} from '../util/errors.js'
import {plural} from '../util/plural.js'
import {Progress} from './progress.js'

export interface TestPubOptions extends Omit<LoadPublisherOptions, 'body' | 'rate'> {
  /** Messages/s; 0 or undefined (no --rate): as fast as the server takes them. */
  rate?: number
  file?: string
  intervalSeconds: number
  json: boolean
  output: NodeJS.WritableStream
}

/** `msgbus test-pub`: says what it will do, publishes, reports within a second and then every interval, and returns the final report. */
export async function testPub(options: TestPubOptions): Promise<TestPubReport> {
  let body: Buffer | undefined
  if (options.file !== undefined) {
    try {
      body = await readFile(options.file)
    } catch (error) {
      throw new Error(`cannot read ${options.file}: ${reasonOf(error)}`, {cause: error})
    }
  }

  const rate = options.rate ?? 0
  const publisher = new LoadPublisher({...options, rate, body})
  const progress = new Progress()
  progress.note(startLine(options))
  let last = {at: performance.now(), published: 0}
  progress.every(options.intervalSeconds, () => {
    const now = performance.now()
    const {published, errors} = publisher.totals
    const line = pubLine(((published - last.published) * 1000) / (now - last.at), published, errors)
    last = {at: now, published}
    return line
  })
  try {
    const totals = await publisher.run()
    const report: TestPubReport = {
      published: totals.published,
      errors: totals.errors,
      rate: round(totals.durationSeconds > 0 ? totals.published / totals.durationSeconds : 0),
      duration_s: round(totals.durationSeconds, 2),
      requested_rate: rate,
      connections: options.connections,
    }
    if (totals.reasons.length > 0) report.reasons = totals.reasons
    progress.done()
    options.output.write(options.json ? `${JSON.stringify(report)}\n` : `${pubSummary(report)}\n`)
    return report
  } finally {
    progress.done()
  }
}

/** What the run will do, said first: flooding, the default, is not what everyone expects. */
function startLine(options: TestPubOptions): string {
  const pace =
    options.rate === undefined
      ? 'as fast as the server takes them (no --rate; -r N sends N a second)'
      : options.rate === 0
        ? 'as fast as the server takes them (--rate 0)'
        : `${options.rate} msg/s`
  const until = [options.count !== undefined && plural(options.count, 'msg'), options.durationSeconds !== undefined && `${options.durationSeconds} s`].filter(Boolean)
  return `publishing ${pace} over ${plural(options.connections, 'connection')}, until ${until.length > 0 ? until.join(' or ') : 'SIGINT'}; a report every ${options.intervalSeconds} s`
}
