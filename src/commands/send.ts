import {Args, Flags} from '@oclif/core'
import {clientOptions} from '../lib/cli/client-options.js'
import {MsgbusCommand} from '../lib/cli/command.js'
import {clientFlags} from '../lib/cli/flags.js'
import {send} from '../lib/cli/send.js'

export default class Send extends MsgbusCommand {
  static override summary = 'Publish a message: stdin, files, or stdin line by line.'
  static override description = `Publishes stdin as one message (an empty stdin sends an empty message), or each FILE as one message with its type from its extension (several FILEs go in one multipart/form-data request, all or none), or with --lines each line of stdin as one message as it arrives, pipelined over one keep-alive connection. A target is a channel name, resolved against --url, $MSGBUS_URL or http://localhost:8888, or a full URL. Exits 0 only when every message was accepted.`

  static override examples = [
    'echo hi | <%= config.bin %> <%= command.id %> foo',
    '<%= config.bin %> <%= command.id %> pictures cat.jpg dog.png',
    'tail -f app.log | <%= config.bin %> <%= command.id %> logs --lines',
    '<%= config.bin %> <%= command.id %> https://bus.example:4444/msgbus/alerts -u ops:secret -t application/json < alert.json',
  ]

  static override args = {
    target: Args.string({description: 'Channel name or full URL.', required: true, ignoreStdin: true}),
    files: Args.string({description: 'Files to send, one message each (- for stdin).', required: false, ignoreStdin: true}),
  }

  static override strict = false

  static override flags = {
    ...clientFlags,
    type: Flags.string({char: 't', summary: 'Content type (default: from each FILE\'s extension; text/plain; charset=utf-8 for stdin).', helpValue: '<type>'}),
    lines: Flags.boolean({summary: 'Send each line of stdin as one message, as it arrives.'}),
    quiet: Flags.boolean({char: 'q', summary: 'Print nothing, not even errors: the exit status says it all.', exclusive: ['verbose']}),
    verbose: Flags.boolean({char: 'v', summary: 'Print each message\'s id and how many subscribers got it.'}),
  }

  public async run(): Promise<void> {
    const {args, argv, flags} = await this.parse(Send)
    if (flags.quiet) this.quietErrors = true
    const files = (argv as string[]).slice(1)
    if (flags.lines && files.length > 0) this.error('--lines reads stdin: give no FILE', {exit: 2})
    await send({
      ...(await clientOptions(flags)),
      target: args.target,
      files,
      type: flags.type,
      lines: flags.lines,
      stdin: process.stdin,
      onPublished: flags.verbose ? ({id, subscribers}) => process.stdout.write(id === undefined ? 'published (the server gave no id)\n' : `id=${id} subscribers=${subscribers}\n`) : undefined,
    })
  }
}
