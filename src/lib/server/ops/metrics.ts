/**
 * The server's metrics in Prometheus' text format, through prom-client,
 * in a registry of the server's own (two servers in one process each have
 * theirs). Loaded with a dynamic import(), and only for `--metrics`:
 * neither `msgbus/server` users nor the CLI's start-up pay for prom-client.
 *
 * Nothing here runs per message: the server counts in plain numbers where
 * things happen (counters.ts), and each metric reads its figure when
 * scraped, through prom-client's `collect` callbacks, from one
 * `counters()` taken at the start of the scrape.
 */
import {readdir, stat} from 'node:fs/promises'
import {collectDefaultMetrics, Counter, Gauge, Registry, type Metric} from 'prom-client'
import {VERSION} from '../../version.js'
import type {ServerCounters} from './counters.js'

/**
 * prom-client's default metrics that cost a scrape time in proportion to the
 * connections, on the event loop: they list every handle (every socket) to
 * count them by type, some milliseconds per thousand subscribers.
 * `msgbus_connections` says what they would.
 */
const LEFT_OUT = ['nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_resources', 'nodejs_active_resources_total']

type Read = (counters: ServerCounters) => number
type ReadLabelled = (counters: ServerCounters) => Record<string, number>

export class ServerMetrics {
  readonly registry = new Registry()
  private current: ServerCounters

  constructor(private readonly counters: () => ServerCounters) {
    this.current = counters()
    collectDefaultMetrics({register: this.registry})
    for (const name of LEFT_OUT) this.registry.removeSingleMetric(name)
    this.openFiles()
    this.counter('msgbus_messages_published_total', 'Messages accepted and handed to their subscribers.', (c) => c.published)
    this.labelledCounter('msgbus_deliveries_total', 'Messages written to subscription streams (live and replayed), by stream format.', 'format', (c) => c.deliveries)
    this.gauge('msgbus_subscribers', 'Subscription streams open now (polls not counted).', (c) => c.subscribers)
    this.gauge('msgbus_channels', 'Channels with subscribers now (every-channel subscriptions count as one).', (c) => c.channels)
    this.counter('msgbus_slow_subscribers_disconnected_total', 'Slow subscribers cut off (--slow-policy disconnect).', (c) => c.slowDisconnects)
    this.counter('msgbus_messages_dropped_total', 'Messages skipped for slow subscribers (--slow-policy drop), one per subscriber.', (c) => c.dropped)
    this.counter('msgbus_bytes_in_total', 'Bytes of message bodies published.', (c) => c.publishedBytes)
    this.counter('msgbus_bytes_out_total', 'Bytes written to subscription streams: response heads, framing and bodies.', (c) => c.bytesOut)
    this.histogram('msgbus_publish_duration_seconds', 'Time from a publish being handled to its answer (with --history-dir, the write to disk included).')
    this.labelledCounter('msgbus_http_responses_total', 'HTTP answers on the bus port(s), by status code; a subscription is a 200 when its stream begins.', 'code', (c) => c.answers)
    this.gauge('msgbus_history_messages', 'Messages kept in the history now.', (c) => c.history.messages)
    this.gauge('msgbus_history_bytes', 'Bytes of messages kept in the history now.', (c) => c.history.bytes)
    this.gauge('msgbus_connections', 'Connections open now, HTTP and HTTPS, subscriptions included.', (c) => c.connections)
    this.counter('msgbus_connections_refused_total', 'Connections refused at the connection cap (--max-connections).', (c) => c.connectionsRefused)
    this.gauge('msgbus_request_body_bytes', 'Bytes held by request bodies still arriving (--max-body-memory).', (c) => c.bodyMemory)
    this.counter('msgbus_login_failures_total', 'Failed logins (wrong --secret or ACL password, unknown user).', (c) => c.logins.failed)
    new Gauge({name: 'msgbus_build_info', help: 'The msgbus version, as a label; always 1.', labelNames: ['version'], registers: [this.registry]}).set({version: VERSION}, 1)
  }

  /** The text a scrape gets, and its Content-Type. */
  async scrape(): Promise<{contentType: string; text: string}> {
    // Every collect() below runs in this turn, before metrics() first awaits: one reading serves them all.
    this.current = this.counters()
    const text = await this.registry.metrics()
    return {contentType: this.registry.contentType, text}
  }

  /**
   * process_open_fds as prom-client has it, at a cost that does not grow
   * with the connections: its own lists /proc/self/fd, synchronously, some
   * 20 ms of CPU and as long a stall of the event loop at 10,000 open
   * files. Linux 6.2 and later give the count as the folder's size; older
   * kernels say 0 there, and get the listing, off the event loop.
   */
  private openFiles(): void {
    const name = 'process_open_fds'
    if (!this.registry.getSingleMetric(name)) return
    this.registry.removeSingleMetric(name)
    const count = async (): Promise<number> => {
      const {size} = await stat('/proc/self/fd')
      // Less the one the listing itself holds open.
      return size > 0 ? size : (await readdir('/proc/self/fd')).length - 1
    }

    new Gauge({
      name,
      help: 'Number of open file descriptors.',
      registers: [this.registry],
      async collect() {
        const open = await count().catch(() => undefined)
        if (open !== undefined) this.set(open)
      },
    })
  }

  private counter(name: string, help: string, read: Read): void {
    const metrics = this
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset()
        this.inc(read(metrics.current))
      },
    })
  }

  private labelledCounter(name: string, help: string, label: string, read: ReadLabelled): void {
    const metrics = this
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset()
        for (const [value, count] of Object.entries(read(metrics.current))) this.inc({[label]: value}, count)
      },
    })
  }

  private gauge(name: string, help: string, read: Read): void {
    const metrics = this
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read(metrics.current))
      },
    })
  }

  /**
   * The publish latency, from the server's own buckets (latency-buckets.ts):
   * prom-client's Histogram can only be fed observations, so this metric
   * hands the registry its values as they are.
   */
  private histogram(name: string, help: string): void {
    const bucket = `${name}_bucket`
    const get = async () => {
      const {buckets, count, sum} = this.current.publishLatency
      const values = [
        ...buckets.map(({le, count}) => ({labels: {le}, value: count, metricName: bucket})),
        {labels: {le: '+Inf'}, value: count, metricName: bucket},
        {labels: {}, value: sum, metricName: `${name}_sum`},
        {labels: {}, value: count, metricName: `${name}_count`},
      ]
      return {name, help, type: 'histogram', aggregator: 'sum', values}
    }

    this.registry.registerMetric({name, help, type: 'histogram', aggregator: 'sum', get} as unknown as Metric)
  }
}
