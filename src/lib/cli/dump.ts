import type {ChalkInstance} from 'chalk'
import type {GapInfo, SubscribeOptions} from '../client/subscribe.js'
import {formatMessage, type OutputFormat} from './message-format.js'
import {plural} from '../util/plural.js'

export interface DumpOptions extends SubscribeOptions {
  target: string
  format: OutputFormat
  /** Stop after this many messages. */
  count?: number
  /** Stop after this many seconds. */
  timeoutSeconds?: number
  output: NodeJS.WritableStream
  colour?: ChalkInstance
  /** Status lines (connected, reconnecting) go here; errors are thrown. */
  status?: (line: string) => void
  /** Gaps (messages that will not come) go here, whatever the verbosity: a reader must not lose messages unawares. */
  warn?: (line: string) => void
}

export interface DumpResult {
  received: number
  seconds: number
  /** Why it stopped. */
  reason: 'count' | 'timeout' | 'aborted' | 'ended' | 'output-closed'
}

/** "received 12 msgs over 3.4 secs (3.5 mps)": what the 2007 tools printed (but "1 msg"). */
export function summary(result: DumpResult): string {
  const rate = result.seconds > 0 ? result.received / result.seconds : 0
  return `received ${plural(result.received, 'msg')} over ${result.seconds.toFixed(1)} secs (${rate.toFixed(1)} mps)`
}

/** One line that says which messages a gap took, and why. */
export function gapLine(gap: Omit<GapInfo, 'url'>): string {
  const after = gap.after === null ? 'from the position asked for' : `after ${gap.after}`
  switch (gap.reason) {
    case 'expired':
      return `gap (expired): the messages ${after} up to ${gap.from} are no longer kept by the server`
    case 'unknown':
      return `gap (unknown): the server never issued ${gap.after ?? 'that id'}; what follows comes after ${gap.from}`
    case 'dropped':
      return `gap (dropped): ${gap.skipped ?? 'some'} messages ${gap.after === null ? '' : `after ${gap.after} `}were skipped while this reader was slow`
  }
}

function write(output: NodeJS.WritableStream, bytes: Buffer | string): Promise<void> | undefined {
  if (output.write(bytes)) return undefined
  // A reader that goes away never drains: closing or failing wakes us too.
  return new Promise((resolve) => {
    const done = () => {
      output.off('drain', done).off('close', done).off('error', done)
      resolve()
    }

    output.once('drain', done).once('close', done).once('error', done)
  })
}

/**
 * `msgbus dump`: subscribes and writes each message in the chosen format,
 * honouring the output's backpressure, until the count, the timeout, an
 * abort (SIGINT) or a closed output ends it.
 */
export async function dump(options: DumpOptions): Promise<DumpResult> {
  const {subscribe} = await import('../client/subscribe.js')
  const started = Date.now()
  const stop = new AbortController()
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal
  let reason: DumpResult['reason'] = 'ended'
  const finish = (why: DumpResult['reason']) => {
    reason = why
    stop.abort()
  }

  const timer = options.timeoutSeconds === undefined ? undefined : setTimeout(() => finish('timeout'), options.timeoutSeconds * 1000)
  const outputClosed = () => finish('output-closed')
  options.output.once('error', outputClosed)
  options.output.once('close', outputClosed)
  options.signal?.addEventListener('abort', () => {
    if (reason === 'ended') reason = 'aborted'
  })
  let received = 0
  try {
    const subscription = subscribe(options.target, {...options, signal})
    const {status, warn} = options
    if (warn) subscription.on('gap', (gap) => warn(gapLine(gap)))
    if (status) {
      subscription.on('connect', ({url, replayFrom}) => status(`subscribed to ${url}${replayFrom ? ` (replaying after ${replayFrom})` : ''}`))
      subscription.on('disconnect', ({url, error}) => status(`disconnected from ${url}${error ? `: ${error.message.replace(`${url}: `, '')}` : ''}`))
      subscription.on('reconnect', ({delayMs}) => status(`reconnecting in ${(delayMs / 1000).toFixed(1)} s`))
    }

    for await (const message of subscription) {
      received++
      const drained = write(options.output, formatMessage(message, options.format, options.colour))
      if (options.count !== undefined && received >= options.count) {
        finish('count')
        break
      }

      if (drained) await drained
    }
  } catch (error) {
    if (!signal.aborted) throw error
  } finally {
    clearTimeout(timer)
    options.output.off('error', outputClosed)
    options.output.off('close', outputClosed)
  }

  return {received, seconds: (Date.now() - started) / 1000, reason}
}
