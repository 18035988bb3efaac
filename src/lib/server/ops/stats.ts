import {monitorEventLoopDelay} from 'node:perf_hooks'
import type {ServerCounters} from './counters.js'
import {LogLevel, type Logger} from './log.js'

const MiB = 1024 * 1024
const mib = (bytes: number) => (bytes / MiB).toFixed(1)
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
    // Rounded to 0.1 ms, as the text shows it.
    const ms = (ns: number) => Math.round(Math.max(0, ns / 1e6 - RESOLUTION_MS) * 10) / 10
    const fields = {
      connections: now.connections,
      subscribers: now.subscribers,
      channels: now.channels,
      published: now.published,
      delivered: now.delivered,
      publishPerSecond: Math.round((now.published - last.published) / seconds),
      deliverPerSecond: Math.round((now.delivered - last.delivered) / seconds),
      dropped: now.dropped,
      slowDisconnects: now.slowDisconnects,
      connectionsRefused: now.connectionsRefused,
      bodyMemoryBytes: now.bodyMemory,
      bodyRefusals: now.bodyRefusals,
      historyMessages: now.history.messages,
      historyBytes: now.history.bytes,
      rssBytes: memory.rss,
      heapBytes: memory.heapUsed,
      loopP50Ms: ms(delay.percentile(50)),
      loopP99Ms: ms(delay.percentile(99)),
      loopMaxMs: ms(delay.max),
    }
    logger.log(
      LogLevel.Always,
      'stats',
      [
        `connections=${fields.connections}`,
        `subscribers=${fields.subscribers}`,
        `channels=${fields.channels}`,
        `published=${fields.published}`,
        `delivered=${fields.delivered}`,
        `publish/s=${fields.publishPerSecond}`,
        `deliver/s=${fields.deliverPerSecond}`,
        `dropped=${fields.dropped}`,
        `slow=${fields.slowDisconnects}`,
        `refused=${fields.connectionsRefused}`,
        `bodies=${mib(fields.bodyMemoryBytes)}MiB`,
        `busy=${fields.bodyRefusals}`,
        `kept=${fields.historyMessages}`,
        `kept-bytes=${mib(fields.historyBytes)}MiB`,
        `rss=${mib(fields.rssBytes)}MiB`,
        `heap=${mib(fields.heapBytes)}MiB`,
        `loop-p50=${fields.loopP50Ms.toFixed(1)}ms`,
        `loop-p99=${fields.loopP99Ms.toFixed(1)}ms`,
        `loop-max=${fields.loopMaxMs.toFixed(1)}ms`,
      ].join(' '),
      fields,
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
