/**
 * How the server's limits are split over `--workers N`. Each worker keeps
 * its own counts (connections, tokens, failed logins, subscriptions): asking
 * the primary on every connection and login would put an IPC round trip in
 * front of each. So each worker gets its share, limit / N rounded down and
 * at least 1: the primary hands connections to workers in turn, so clients
 * spread over them get about the whole limit, and no more than it (N times
 * the share) unless the limit is below N; a client held on one worker (one
 * keep-alive connection) gets its share. README "Workers" says the same.
 */
import type {BusServerOptions} from '../server/options.js'

/** The limits that are split: each counts in one process. */
export const SPLIT_LIMITS = ['maxConnections', 'maxConnectionsPerIp', 'rateLimit', 'maxLoginFailures', 'maxSubscribers', 'maxChannels'] as const

type SplitLimit = (typeof SPLIT_LIMITS)[number]

/** One worker's share of each limit that is set (0 and absent mean none, and stay so). */
export function workerShare(options: Pick<BusServerOptions, SplitLimit>, workers: number): Pick<BusServerOptions, SplitLimit> {
  const share: Pick<BusServerOptions, SplitLimit> = {}
  for (const name of SPLIT_LIMITS) {
    const limit = options[name]
    if (limit !== undefined) share[name] = limit > 0 ? Math.max(1, Math.floor(limit / workers)) : limit
  }

  return share
}
