import {Args, Flags} from '@oclif/core'
import {chalkStderr, default as chalk} from 'chalk'
import {clientOptions} from '../lib/cli/client-options.js'
import {MsgbusCommand} from '../lib/cli/command.js'
import {dump, summary} from '../lib/cli/dump.js'
import {clientFlags, positionFlag} from '../lib/cli/flags.js'

export default class Dump extends MsgbusCommand {
  static override summary = 'Subscribe and print every message, one line each.'
  static override description = `Prints one line per message, made for grep: time, channel, type, sender (- if none), length, and the body with newlines and control characters escaped (binary bodies as their length and type only). --raw prints bodies only, --json one JSON object per line, --quiet the part headers. No target, or /, means every channel. Reconnects when the stream ends unless --no-reconnect, resuming after the last message printed, so none is lost while the server keeps them. --since starts with the messages the server keeps from a position on (a message id: those after it; a time; a duration back from now; all), then follows; --poll prints those (all kept, without --since) and exits. Messages the server no longer has, or skipped while dump was slow, are reported on stderr as a gap, one line each, even without -v; stdout carries messages only, and the exit status stays 0. SIGINT prints how many messages arrived on stderr and exits 0.`

  static override examples = [
    '<%= config.bin %> <%= command.id %> / | grep error',
    '<%= config.bin %> <%= command.id %> foo --json | jq .body',
    '<%= config.bin %> <%= command.id %> logs --raw --type "text/*"',
    '<%= config.bin %> <%= command.id %> alerts -n 1 --timeout 30',
    '<%= config.bin %> <%= command.id %> logs --since 10m',
    '<%= config.bin %> <%= command.id %> logs --since all --poll --json > backlog.ndjson',
    '<%= config.bin %> <%= command.id %> foo --since 1795764040540-3',
  ]

  static override args = {
    target: Args.string({description: 'Channel name or full URL (default: every channel).', default: '/', ignoreStdin: true}),
  }

  static override flags = {
    ...clientFlags,
    raw: Flags.boolean({char: 'r', summary: 'Print bodies only, each followed by a newline unless it ends in one.', exclusive: ['json', 'quiet']}),
    json: Flags.boolean({summary: 'Print one JSON object per message (NDJSON).', exclusive: ['raw', 'quiet']}),
    quiet: Flags.boolean({char: 'q', summary: 'Print only the part headers of each message.', exclusive: ['raw', 'json']}),
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
    const {args, flags} = await this.parse(Dump)
    const signal = this.interruption()
    process.stdout.on('error', () => {})
    const result = await dump({
      ...(await clientOptions(flags)),
      target: args.target,
      format: flags.raw ? 'raw' : flags.json ? 'json' : flags.quiet ? 'headers' : 'line',
      type: flags.type,
      sender: flags.sender,
      count: flags.count,
      timeoutSeconds: flags.timeout,
      reconnect: flags.reconnect,
      since: flags.since,
      poll: flags.poll,
      signal,
      output: process.stdout,
      colour: process.stdout.isTTY && chalk.level > 0 ? chalk : undefined,
      status: flags.verbose || process.stderr.isTTY ? (line) => process.stderr.write(`${chalkStderr.dim(`${this.config.bin} ${this.id}: ${line}`)}\n`) : undefined,
      warn: (line) => process.stderr.write(`${this.config.bin} ${this.id}: ${line}\n`),
    })
    if (result.reason === 'aborted') process.stderr.write(`${summary(result)}\n`)
    if (result.reason === 'timeout' && flags.count !== undefined) this.error(`${summary(result)}: fewer than ${flags.count} before the timeout`, {exit: 1})
  }
}
