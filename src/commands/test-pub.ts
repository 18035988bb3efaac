import {Flags} from '@oclif/core'
import {clientOptions} from '../lib/cli/client-options.js'
import {MsgbusCommand} from '../lib/cli/command.js'
import {clientFlags, sizeFlag} from '../lib/cli/flags.js'
import {server2007Flags, url2007} from '../lib/cli/server-2007.js'
import {testPub} from '../lib/cli/test-pub.js'
import {plural} from '../lib/util/plural.js'

export default class TestPub extends MsgbusCommand {
  static override summary = 'Publish load: a paced or flat-out flood of messages, for load tests.'
  static override description = `Publishes over keep-alive connections, at --rate messages/s (paced on an absolute schedule) or, without --rate (or with --rate 0), as fast as the server accepts them, each connection keeping --pipeline requests in flight; the first line on stderr says which. Each message carries its sequence number and send time in a parameter of its content type (msgbus-load=...), so test-sub can measure loss and latency while -f bodies stay intact; with --marker body it opens the body instead (then padded or cut to --size, never into the marker), for servers whose streams carry no type. Any 2xx answer counts as published (msgbus answers 204, nginx+nchan 201 or 202). Reports messages/s after a second, then every --interval seconds (a live line on a terminal), and at the end a summary (starting with total:) or, with --json, one JSON document: published, errors, rate, duration_s, requested_rate, connections. Runs until --count, --duration or SIGINT; exits non-zero when any message was refused or went unanswered (the server closed the connection).`

  static override examples = [
    '<%= config.bin %> <%= command.id %> -r 100 -d 15',
    '<%= config.bin %> <%= command.id %> -c flood -r 0 --connections 8 --pipeline 16 -d 10 --json',
    '<%= config.bin %> <%= command.id %> -c cams -f frame.jpg -t image/jpeg -r 25',
  ]

  static override flags = {
    ...clientFlags,
    ...server2007Flags,
    channel: Flags.string({char: 'c', summary: 'Channel name or full URL to publish to.', default: 'flood'}),
    channels: Flags.integer({summary: 'Spread the messages over channels CHANNEL-0 to CHANNEL-(N-1), in turn.', default: 1, min: 1, helpValue: '<n>'}),
    file: Flags.string({char: 'f', summary: 'Body of every message, from this file (default: <h1>hello world N</h1>).', helpValue: '<file>'}),
    rate: Flags.integer({char: 'r', summary: 'Messages per second over all connections (default, or 0: as fast as the server accepts them).', helpValue: '<n>', min: 0}),
    type: Flags.string({char: 't', summary: 'Content type of the messages.', default: 'text/html'}),
    connections: Flags.integer({summary: 'Keep-alive publisher connections.', default: 1, min: 1}),
    pipeline: Flags.integer({summary: 'Requests in flight per connection.', default: 1, min: 1}),
    duration: Flags.integer({char: 'd', summary: 'Stop after this many seconds.', min: 1, helpValue: '<seconds>'}),
    count: Flags.integer({summary: 'Stop after this many messages.', min: 1}),
    marker: Flags.string({summary: 'Where each message carries its load marker: type (a parameter of its content type, the default) or body (the start of its body, for streams that carry no type, such as nchan\'s SSE).', options: ['type', 'body'], default: 'type', helpValue: '<where>'}),
    size: sizeFlag({summary: 'Pad (or cut) every body to this many bytes.'}),
    interval: Flags.integer({summary: 'Seconds between reports.', default: 5, min: 1}),
    json: Flags.boolean({summary: 'At the end, print one JSON document instead of the summary.'}),
  }

  public async run(): Promise<void> {
    const {flags} = await this.parse(TestPub)
    const signal = this.interruption()
    const report = await testPub({
      ...(await clientOptions({...flags, url: url2007(flags) ?? flags.url})),
      target: flags.channel,
      channels: flags.channels,
      file: flags.file,
      size: flags.size,
      marker: flags.marker as 'type' | 'body',
      type: flags.type,
      rate: flags.rate,
      connections: flags.connections,
      pipeline: flags.pipeline,
      durationSeconds: flags.duration,
      count: flags.count,
      intervalSeconds: flags.interval,
      json: flags.json,
      signal,
      output: process.stdout,
    })
    if (report.errors > 0) this.error(`${plural(report.errors, 'message was', 'messages were')} refused or unanswered${report.reasons ? `: ${report.reasons.join('; ')}` : ''}`, {exit: 1})
  }
}
