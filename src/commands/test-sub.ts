import {Flags} from '@oclif/core'
import {clientOptions} from '../lib/cli/client-options.js'
import {MsgbusCommand} from '../lib/cli/command.js'
import {clientFlags} from '../lib/cli/flags.js'
import {server2007Flags, url2007} from '../lib/cli/server-2007.js'
import {testSub} from '../lib/cli/test-sub.js'
import {plural} from '../lib/util/plural.js'

export default class TestSub extends MsgbusCommand {
  static override summary = 'Hold many subscriptions and measure what arrives: rate, loss, order, latency.'
  static override description = `Opens --connections subscriptions (--ramp per second) and checks every message test-pub sends: gaps per connection (lost), duplicates, out of order, and latency from send to receipt (an HDR histogram: p50, p90, p99, max). A connection the server drops is reopened and resumes after the last message it got (Last-Event-ID): recovered counts the messages a reopened connection got that were sent before it asked to resume, gaps the gap events the server sent (messages it no longer keeps). Reports after a second, then every --interval seconds (a live line on a terminal), with its own CPU time so a reader can see it was not the bottleneck; at the end a summary starting with total: (the messages received, and the rate from the first message to the last, so time spent waiting for test-pub does not count) or, with --json, one JSON document: connections {requested, connected, failed}, received, lost, duplicates, out_of_order, reconnects, recovered, gaps, rate (over window_s), bytes, latency_ms {p50, p90, p99, max}, cpu_s, duration_s, window_s (first message received to last), reads (how it read the subscriptions: the native reader, through an io_uring or a recv(2) a socket, or Node; MSGBUS_NATIVE_READ chooses). Exits non-zero when anything was lost or a connection failed.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> -n 1000 -d 20 --json > sub.json & <%= config.bin %> test-pub -r 100 -d 15; wait $! || echo LOST',
    '<%= config.bin %> <%= command.id %> -c flood -n 10000 --ramp 2000 -d 60',
    '<%= config.bin %> <%= command.id %> -c news --print',
  ]

  static override flags = {
    ...clientFlags,
    ...server2007Flags,
    channel: Flags.string({char: 'c', summary: 'Channel name or full URL to subscribe to.', default: 'flood'}),
    channels: Flags.integer({summary: 'Spread the connections over channels CHANNEL-0 to CHANNEL-(N-1), as test-pub --channels N publishes.', default: 1, min: 1, helpValue: '<n>'}),
    connections: Flags.integer({char: 'n', summary: 'Subscriptions to hold.', default: 1, min: 1}),
    ramp: Flags.integer({summary: 'Connections opened per second (0: as fast as they connect).', default: 0, min: 0}),
    duration: Flags.integer({char: 'd', summary: 'Stop after this many seconds (default: at SIGINT).', min: 1, helpValue: '<seconds>'}),
    type: Flags.string({char: 't', summary: 'Only messages whose type matches these patterns.', helpValue: '<patterns>'}),
    // No -s: the 2007 test-sub's -s is SSL.
    sender: Flags.string({summary: 'Only messages from senders matching these patterns.', helpValue: '<patterns>'}),
    format: Flags.string({summary: 'Stream format to ask msgbus for (?format=): multipart (the default) or sse; test-sub reads either.', options: ['multipart', 'sse'], helpValue: '<format>'}),
    accept: Flags.string({summary: 'Accept header of the subscriptions: how another server is asked for a stream (nginx+nchan: multipart/mixed or text/event-stream).', helpValue: '<media type>'}),
    print: Flags.boolean({summary: 'Print each message of the first connection as `channel type sender [body]`.'}),
    interval: Flags.integer({summary: 'Seconds between reports.', default: 5, min: 1}),
    json: Flags.boolean({summary: 'At the end, print one JSON document instead of the summary.'}),
  }

  public async run(): Promise<void> {
    const {flags} = await this.parse(TestSub)
    const signal = this.interruption()
    const report = await testSub({
      ...(await clientOptions({...flags, url: url2007(flags) ?? flags.url})),
      target: flags.channel,
      channels: flags.channels,
      connections: flags.connections,
      ramp: flags.ramp,
      type: flags.type,
      sender: flags.sender,
      format: flags.format,
      accept: flags.accept,
      durationSeconds: flags.duration,
      intervalSeconds: flags.interval,
      print: flags.print,
      json: flags.json,
      signal,
      output: process.stdout,
    })
    const problems = [
      report.lost > 0 && `${plural(report.lost, 'message')} lost`,
      report.connections.failed > 0 && `${plural(report.connections.failed, 'connection')} failed${report.errors ? ` (${report.errors.join('; ')})` : ''}`,
    ].filter(Boolean)
    if (problems.length > 0) this.error(problems.join(', '), {exit: 1})
  }
}
