import {Args, Flags} from '@oclif/core'
import {MsgbusCommand} from '../lib/cli/command.js'
import {runDump} from '../lib/cli/dump-command.js'
import {clientFlags, positionFlag} from '../lib/cli/flags.js'

export default class Dump extends MsgbusCommand {
  static override summary = 'Subscribe and print every message, one line each.'
  static override description = `Prints one line per message, made for grep: time, channel, type, sender (- if none), length, and the body with newlines and control characters escaped (binary bodies as their length and type only; colours on a terminal, none with NO_COLOR). --raw prints bodies only: a text body followed by a newline unless it ends in one, any other byte for byte (the same rule as the server's ?format=raw), except to a terminal, where a binary body is named by its type and length instead. --save DIR writes each body, exactly, to DIR/<id>.<ext> (the extension from its type, .bin if none) and prints each file's path. --json prints one JSON object per line, --quiet the part headers. No target, or /, means every channel.

Reconnects when the stream ends, or fails in a way that can heal (connection refused or reset, closed by the server, timeouts, among them a connection accepted but left without a response head for 10 s, a temporary name lookup failure, 408, 429, 5xx), with backoff, for as long as it runs, unless --no-reconnect; it resumes after the last message printed, so none is lost while the server keeps them. Failures that will not heal end it at once, naming the reason: an untrusted, expired or wrong-host TLS certificate, an unknown host, any other 4xx. --since starts with the messages the server keeps from a position on (a message id: those after it; a time; a duration back from now; all), then follows; --poll prints those (all kept, without --since) and exits.

Losses are never silent. Whatever the verbosity, stderr says when the server cuts the stream and why (too slow, or shutting down) and where dump resumes; each gap (messages the server no longer has, or skipped while dump was slow) as a line of its own; and a reconnect to a server that gives no message ids (what came meanwhile is lost). At the end, if anything was lost or cut, one line sums it up. stdout carries messages only.

Exit status: 0 when it ends (--count reached, SIGINT, the stream over with --no-reconnect or --poll) having lost nothing, or with --allow-loss; 1 when messages were lost, on a failure, or when --timeout came before --count; 2 on a usage error. SIGINT prints how many messages arrived on stderr.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> / | grep error',
    '<%= config.bin %> <%= command.id %> foo --json | jq .body',
    '<%= config.bin %> <%= command.id %> logs --raw --type "text/*"',
    '<%= config.bin %> <%= command.id %> alerts -n 1 --timeout 30',
    '<%= config.bin %> <%= command.id %> logs --since 10m',
    '<%= config.bin %> <%= command.id %> logs --since all --poll --json > backlog.ndjson',
    '<%= config.bin %> <%= command.id %> foo --since 1795764040540-3',
    '<%= config.bin %> <%= command.id %> charts --raw -n 1 > chart.png',
    '<%= config.bin %> <%= command.id %> uploads --save ./uploads',
  ]

  static override args = {
    target: Args.string({description: 'Channel name or full URL (default: every channel).', default: '/', ignoreStdin: true}),
  }

  static override flags = {
    ...clientFlags,
    raw: Flags.boolean({char: 'r', summary: 'Print bodies only: text followed by a newline unless it ends in one, anything else byte for byte.', exclusive: ['json', 'quiet', 'save']}),
    json: Flags.boolean({summary: 'Print one JSON object per message (NDJSON).', exclusive: ['raw', 'quiet', 'save']}),
    quiet: Flags.boolean({char: 'q', summary: 'Print only the part headers of each message.', exclusive: ['raw', 'json', 'save']}),
    save: Flags.directory({summary: 'Write each body, byte for byte, to DIR/<id>.<ext> (made if missing), and print the path of each file.', helpValue: '<dir>', exclusive: ['raw', 'json', 'quiet']}),
    'allow-loss': Flags.boolean({summary: 'Exit 0 even when messages were lost (still reported on stderr).'}),
    type: Flags.string({char: 't', summary: 'Only messages whose type matches these patterns (text/*,image/*; ! negates).', helpValue: '<patterns>'}),
    sender: Flags.string({char: 's', summary: 'Only messages from senders matching these patterns (alice,b*).', helpValue: '<patterns>'}),
    count: Flags.integer({char: 'n', summary: 'Exit after this many messages.', min: 1}),
    timeout: Flags.integer({summary: 'Exit after this many seconds (non-zero if --count was not reached).', min: 1, helpValue: '<seconds>'}),
    reconnect: Flags.boolean({summary: 'Reconnect when the stream ends or fails, resuming after the last message printed.', default: true, allowNo: true}),
    since: positionFlag({summary: 'First the messages kept since this position: a message id (those after it), a time (unix ms, ISO 8601), a duration back from now (10m), or all.'}),
    poll: Flags.boolean({summary: 'Print the messages kept (since --since, else all) and exit, without following.'}),
    verbose: Flags.boolean({char: 'v', summary: 'Say on stderr when the stream connects and disconnects.'}),
  }

  public async run(): Promise<void> {
    const status = await runDump(await this.parse(Dump), this.context())
    if (status !== 0) this.exit(status)
  }
}
