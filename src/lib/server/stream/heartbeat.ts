import type {Frame} from '../../protocol/stream-encoder.js'
import type {HttpSubscription} from './subscription.js'

/**
 * Every `intervalMs`, writes `frame` to each subscription of the format
 * that has one (SSE comments), so proxies and browsers do not take a quiet
 * stream for a dead one. Returns the function that stops it.
 */
export function startHeartbeat(intervalMs: number, subscriptions: Iterable<HttpSubscription>, format: string, frame: Frame): () => void {
  if (intervalMs <= 0) return () => {}
  const timer = setInterval(() => {
    for (const subscription of subscriptions) if (subscription.encoder.format === format) subscription.send(frame)
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
