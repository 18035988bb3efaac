import {formatTestSubPrint} from './message-format.js'
import {subLine, subReport, subSummary, type TestSubReport} from '../load/report.js'
import {SubscriberPool, type SubscriberPoolOptions} from '../load/subscriber-pool.js'
import {Window} from '../load/tally.js'
import {Progress} from './progress.js'

export interface TestSubOptions extends Omit<SubscriberPoolOptions, 'onMessage'> {
  durationSeconds?: number
  intervalSeconds: number
  print: boolean
  json: boolean
  output: NodeJS.WritableStream
}

/**
 * `msgbus test-sub`: holds the subscriptions for the duration (or until the
 * signal), reports within a second and then every interval, and returns the
 * final report.
 */
export async function testSub(options: TestSubOptions): Promise<TestSubReport> {
  const pool = new SubscriberPool({...options, onMessage: options.print ? (part, channel) => options.output.write(formatTestSubPrint(part, channel)) : undefined})
  const progress = new Progress()
  const totals = new Window()
  const started = performance.now()
  let intervalStart = started
  progress.every(options.intervalSeconds, () => {
    const window = pool.takeWindow()
    totals.add(window)
    const now = performance.now()
    const line = subLine(subReport(window, options.connections, pool.connected, pool.failed, (now - intervalStart) / 1000, [], 'interval'))
    intervalStart = now
    return line
  })

  const ended = new Promise<void>((resolve) => {
    if (options.durationSeconds !== undefined) setTimeout(resolve, options.durationSeconds * 1000).unref()
    if (options.signal?.aborted) resolve()
    options.signal?.addEventListener('abort', () => resolve())
  })
  try {
    await Promise.race([pool.start(), ended])
    await ended
  } finally {
    progress.done()
  }

  const connected = pool.connected
  pool.stop()
  totals.add(pool.takeWindow())
  const report = subReport(totals, options.connections, connected, pool.failed, (performance.now() - started) / 1000, pool.reasons)
  report.reads = pool.reads()
  options.output.write(`${options.json ? JSON.stringify(report) : subSummary(report)}\n`)
  return report
}
