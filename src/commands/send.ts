import {Args, Flags} from '@oclif/core'
import {MsgbusCommand} from '../lib/cli/command.js'
import {clientFlags, durationFlag, sizeFlag} from '../lib/cli/flags.js'
import {runSend} from '../lib/cli/send-command.js'

export default class Send extends MsgbusCommand {
  static override summary = 'Publish a message: stdin, files, text, or stdin line by line.'
  static override description = `Publishes stdin as one message (an empty stdin sends an empty message), or each FILE as one message (several FILEs go in one multipart/form-data request, all or none), or each -m TEXT as one message, or with --lines each line of stdin as one message as it arrives, pipelined over one keep-alive connection. A target is a channel name, resolved against --url, $MSGBUS_URL or http://localhost:8888, or a full URL.

Without -t, the type is what the body's first bytes say (PNG, JPEG, PDF, gzip...), else what a FILE's extension says, else text/plain; charset=utf-8 for valid UTF-8 text, else application/octet-stream. --lines and -m send text/plain; charset=utf-8.

--lines rides out a server restart: it retries what can heal (connection refused or reset, the server closing, a connection left without an answer for 30 s, 408, 429, 5xx) with backoff (from 0.25 s, doubling with jitter, up to 5 s) for --retry-for (default: for ever), keeping unsent lines in a buffer of --buffer bytes; when that is full it says so and stops reading stdin, so the writer blocks instead of lines being dropped. Lines written to a connection that broke before their answers came are sent again ("retried"): a retried line arrives twice if the server had taken it. A line refused for itself (413, too large) is lost and reported, and the others go on; a refusal of them all (400, 401, 403, 404) stops at once, as do an unknown host and an untrusted certificate. It ends with a report on stderr (N lines sent, R retried, L lost) when anything went wrong, at SIGINT or SIGTERM (it then stops reading stdin and sends the lines it has read for up to 5 s more while the server answers; what is left then, or at once if the server is away, is counted lost, as is a line the interruption cuts short), and with -v.

Credentials: -u, else the URL's user:pass@, else $MSGBUS_USER; a user without a password takes $MSGBUS_PASSWORD, else asks for it on the terminal (no echo) when there is one.

A publish the server has not answered within 30 s (a connection accepted and left unanswered, as by a cluster worker that is dying) fails: one-shot, with "<url>: no answer within 30 s (the message may have been published)"; with --lines, as a connection that broke.

Exit status: 0 when every message was delivered; 1 when one was not (a line lost, a failure); 2 for a usage error.`

  static override examples = [
    'echo hi | <%= config.bin %> <%= command.id %> foo',
    '<%= config.bin %> <%= command.id %> foo -m "hello world"',
    '<%= config.bin %> <%= command.id %> pictures cat.jpg dog.png',
    '<%= config.bin %> <%= command.id %> pictures < chart.png',
    'tail -f app.log | <%= config.bin %> <%= command.id %> logs --lines',
    'tail -f app.log | <%= config.bin %> <%= command.id %> logs --lines --buffer 64MiB --retry-for 1h',
    'MSGBUS_USER=ops <%= config.bin %> <%= command.id %> https://bus.example:4444/msgbus/alerts -t application/json < alert.json',
  ]

  static override args = {
    target: Args.string({description: 'Channel name or full URL.', required: true, ignoreStdin: true}),
    files: Args.string({description: 'Files to send, one message each (- for stdin).', required: false, ignoreStdin: true}),
  }

  static override strict = false

  static override flags = {
    ...clientFlags,
    message: Flags.string({char: 'm', summary: 'Send this text as a message (repeatable: one message each, in one request).', helpValue: '<text>', multiple: true, multipleNonGreedy: true}),
    type: Flags.string({char: 't', summary: 'Content type (default: from the body\'s first bytes, else the FILE\'s extension, else text or binary).', helpValue: '<type>'}),
    lines: Flags.boolean({summary: 'Send each line of stdin as one message, as it arrives; ride out server restarts.'}),
    buffer: sizeFlag({summary: 'With --lines: unsent lines kept while the server is unreachable; when full, stdin is not read.', default: 8 * 1024 * 1024, defaultHelp: async () => '8MiB'}),
    'retry-for': durationFlag({summary: 'Keep retrying failures that can heal for this long (0: not at all; default: for ever with --lines, 0 otherwise).'}),
    quiet: Flags.boolean({char: 'q', summary: 'Print nothing, not even errors: the exit status says it all.', exclusive: ['verbose']}),
    verbose: Flags.boolean({char: 'v', summary: 'Print each message\'s id and how many subscribers got it; each retry on stderr.'}),
  }

  public async run(): Promise<void> {
    const status = await runSend(await this.parse(Send), this.context())
    if (status !== 0) this.exit(status)
  }
}
