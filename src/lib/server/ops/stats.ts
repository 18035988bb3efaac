import {monitorEventLoopDelay} from 'node:perf_hooks'
import type {ServerCounters} from './counters.js'
import {LogLevel, type Logger} from './log.js'

const MiB = 1024 * 1024
/** The sampling timer's period: the histogram records whole periods, so the delay is what lies beyond one. */
const RESOLUTION_MS = 10

/**
 * Every `intervalMs`, one log line of how the server is doing: what it
 * carries, what it holds in memory, and how long the event loop kept
 * callbacks waiting (p50/p99/max over the interval). A soak run reads these
 * lines; an operator can watch them. Returns the function that stops it.
 */
export function startStats(intervalMs: number, counters: () => ServerCounters, logger: Logger): () => void {
  if (intervalMs <= 0) return () => {}
  const delay = monitorEventLoopDelay({resolution: RESOLUTION_MS})
  delay.enable()
  let last = counters()
  let lastAt = performance.now()
  const timer = setInterval(() => {
    const now = counters()
    const at = performance.now()
    const seconds = (at - lastAt) / 1000
    const memory = process.memoryUsage()
    const ms = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS).toFixed(1)
    logger.log(
      LogLevel.Always,
      'stats',
      [
        `connections=${now.connections}`,
        `subscribers=${now.subscribers}`,
        `channels=${now.channels}`,
        `published=${now.published}`,
        `delivered=${now.delivered}`,
        `publish/s=${Math.round((now.published - last.published) / seconds)}`,
        `deliver/s=${Math.round((now.delivered - last.delivered) / seconds)}`,
        `dropped=${now.dropped}`,
        `slow=${now.slowDisconnects}`,
        `refused=${now.connectionsRefused}`,
        `bodies=${(now.bodyMemory / MiB).toFixed(1)}MiB`,
        `busy=${now.bodyRefusals}`,
        `kept=${now.history.messages}`,
        `kept-bytes=${(now.history.bytes / MiB).toFixed(1)}MiB`,
        `rss=${(memory.rss / MiB).toFixed(1)}MiB`,
        `heap=${(memory.heapUsed / MiB).toFixed(1)}MiB`,
        `loop-p50=${ms(delay.percentile(50))}ms`,
        `loop-p99=${ms(delay.percentile(99))}ms`,
        `loop-max=${ms(delay.max)}ms`,
      ].join(' '),
    )
    delay.reset()
    last = now
    lastAt = at
  }, intervalMs)
  timer.unref()
  return () => {
    clearInterval(timer)
    delay.disable()
  }
}
