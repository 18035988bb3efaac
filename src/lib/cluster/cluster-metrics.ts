/**
 * `--metrics` with `--workers`: the server's metrics over the cluster's
 * summed counters, and two of the cluster's own. Loaded with a dynamic
 * import(), as metrics.ts is: prom-client only for `--metrics`.
 */
import {Gauge} from 'prom-client'
import {ServerMetrics} from '../server/ops/metrics.js'
import type {ServerCounters} from '../server/ops/counters.js'

export interface ClusterView {
  counters(): ServerCounters
  readonly serving: number
  perWorker(): Array<{slot: number; subscribers: number}>
}

export function clusterMetrics(cluster: ClusterView): ServerMetrics {
  const metrics = new ServerMetrics(() => cluster.counters())
  new Gauge({
    name: 'msgbus_workers_serving',
    help: 'Workers serving now (--workers).',
    registers: [metrics.registry],
    collect() {
      this.set(cluster.serving)
    },
  })
  new Gauge({
    name: 'msgbus_worker_subscribers',
    help: 'Subscription streams open now, by worker slot (--workers), as the worker last reported it (every second).',
    labelNames: ['worker'],
    registers: [metrics.registry],
    collect() {
      this.reset()
      for (const each of cluster.perWorker()) this.set({worker: String(each.slot)}, each.subscribers)
    },
  })
  return metrics
}
