import type {ChalkInstance} from 'chalk'
import type {GapInfo, Losses, SubscribeOptions, SubscriptionEvents} from '../client/subscribe.js'
import {formatMessage, type OutputFormat} from './message-format.js'
import {BodySaver} from './save.js'
import {plural} from '../util/plural.js'

export interface DumpOptions extends SubscribeOptions {
  target: string
  format: OutputFormat
  /** Stop after this many messages. */
  count?: number
  /** Stop after this many seconds. */
  timeoutSeconds?: number
  output: NodeJS.WritableStream
  /** Write each body to a file of its own in this folder (save.ts), and its path to `output`, instead of the message. */
  saveDir?: string
  colour?: ChalkInstance
  /** The output is a terminal: --raw does not write binary bodies there. */
  terminal?: boolean
  /** Status lines (connected, reconnecting) go here; errors are thrown. */
  status?: (line: string) => void
  /** Gaps (messages that will not come), and the server cutting the stream, go here, whatever the verbosity: a reader must not lose messages unawares. */
  warn?: (line: string) => void
}

export interface DumpResult {
  received: number
  seconds: number
  /** Why it stopped. */
  reason: 'count' | 'timeout' | 'aborted' | 'ended' | 'output-closed'
  /** What was lost on the way (gaps, reconnects with nothing to resume from). */
  losses: Losses
  /** Times the server cut the stream as too slow (the disconnect event said so). */
  cuts: number
}

/** "received 12 msgs over 3.4 secs (3.5 mps)": what the 2007 tools printed (but "1 msg"). */
export function summary(result: DumpResult): string {
  const rate = result.seconds > 0 ? result.received / result.seconds : 0
  return `received ${plural(result.received, 'msg')} over ${result.seconds.toFixed(1)} secs (${rate.toFixed(1)} mps)`
}


/**
 * The one line said at the end when anything was lost or the server cut
 * dump as too slow: "lost 91 messages and an unknown number at 1 more point;
 * cut by the server as too slow 2 times", "lost nothing; cut ...".
 * Undefined when there is nothing to say.
 */
export function lossSummary(result: Pick<DumpResult, 'losses' | 'cuts'>): string | undefined {
  const {losses, cuts} = result
  if (losses.events === 0 && cuts === 0) return undefined
  const counted = losses.events > losses.uncounted ? plural(losses.messages, 'message') : undefined
  const unknown = losses.uncounted > 0 ? `an unknown number at ${plural(losses.uncounted, counted ? 'more point' : 'point', counted ? 'more points' : 'points')}` : undefined
  const lost = counted || unknown ? `lost ${[counted, unknown].filter(Boolean).join(' and ')}` : 'lost nothing'
  return cuts > 0 ? `${lost}; cut by the server as too slow ${plural(cuts, 'time')}` : lost
}

/** The warning when the server closed the stream saying why (a disconnect event): what it said, and what dump does next. */
export function cutLine(info: SubscriptionEvents['disconnect'][0], resumesAfter: string | undefined, reconnect: boolean): string | undefined {
  const {notice} = info
  if (!notice) return undefined
  const next = resumesAfter ? `resuming after ${resumesAfter}` : 'reconnecting, with nothing to resume from'
  if (notice.reason === 'shutdown') return `the server is shutting down${reconnect ? `; ${next} when it is back` : ''}`
  const detail = [notice.unsent !== undefined && `${notice.unsent} bytes unsent`, notice.behindMs !== undefined && `behind for ${(notice.behindMs / 1000).toFixed(1)} s`].filter(Boolean)
  return `cut by the server: too slow${detail.length > 0 ? ` (${detail.join(', ')})` : ''}; ${reconnect ? next : 'not reconnecting (--no-reconnect)'}`
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
    case 'lost':
      return `gap (lost): the shared log behind the server (--bus) lost messages after ${gap.from}; what follows comes after the hole`
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
  let cuts = 0
  const saver = options.saveDir === undefined ? undefined : new BodySaver(options.saveDir)
  let losses: Losses = {events: 0, messages: 0, uncounted: 0}
  try {
    const subscription = subscribe(options.target, {...options, signal})
    losses = subscription.losses
    const {status, warn} = options
    subscription.on('disconnect', (info) => {
      if (info.reason === undefined) return
      if (info.reason === 'slow') cuts++
      const line = cutLine(info, subscription.resumesAfter, !options.poll && options.reconnect !== false)
      if (line && warn) warn(line)
    })
    if (warn) {
      subscription.on('gap', (gap) => warn(gapLine(gap)))
      subscription.on('loss', ({reason}) => {
        if (reason === 'reconnect') warn('reconnected with no message id to resume from (the server gives none): what was published meanwhile is lost')
      })
    }

    if (status) {
      subscription.on('connect', ({url, replayFrom}) => status(`subscribed to ${url}${replayFrom ? ` (replaying after ${replayFrom})` : ''}`))
      subscription.on('disconnect', ({url, error}) => status(`disconnected from ${url}${error ? `: ${error.message.replace(`${url}: `, '')}` : ''}`))
      subscription.on('reconnect', ({delayMs}) => status(`reconnecting in ${(delayMs / 1000).toFixed(1)} s`))
    }

    for await (const message of subscription) {
      received++
      const bytes = saver ? `${await saver.save(message)}\n` : formatMessage(message, options.format, options.colour, options.terminal)
      const drained = write(options.output, bytes)
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

  return {received, seconds: (Date.now() - started) / 1000, reason, losses: {...losses}, cuts}
}
