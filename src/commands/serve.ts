import {MsgbusCommand} from '../lib/cli/command.js'
import {flagValues, optionFlags} from '../lib/cli/option-flags.js'
import {normalizeVerbosity} from '../lib/cli/verbosity.js'
import {hashPasswordFromStdin} from '../lib/cli/hash-password.js'
import {serve} from '../lib/cli/serve.js'
import {OPTION_TABLE} from '../lib/server/option-table.js'
import {streamLogger} from '../lib/server/ops/logger.js'

export default class Serve extends MsgbusCommand {
  static override summary = 'Run the message bus server.'
  static override description = `Publishers POST to /msgbus/<channel>; subscribers GET /msgbus/<channel> (or /msgbus/ for every channel) and receive every message in one endless response: multipart/x-mixed-replace by default, or Server-Sent Events, NDJSON or bare bodies (?format=sse|ndjson|raw, or by Accept). A browser that opens a bus URL gets a live viewer page. Logs go to stderr, one line per event. SIGINT or SIGTERM ends every stream properly and exits.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --port 8080 --docroot ./www -v',
    '<%= config.bin %> <%= command.id %> --cert server.pem --secret s3cret',
    '<%= config.bin %> <%= command.id %> --acl /etc/msgbus/acl   # kill -HUP reloads it',
    'read -rs PW && printf \'%s\\n\' "$PW" | <%= config.bin %> <%= command.id %> --hash-password',
    '<%= config.bin %> <%= command.id %> -d web/chatdemo --cors https://app.example.com',
    'sudo <%= config.bin %> <%= command.id %> -p 80 -c cert.pem -P 443 -u nobody',
  ]

  static override flags = optionFlags(OPTION_TABLE)

  public async run(): Promise<void> {
    const {flags} = await this.parse(Serve, normalizeVerbosity(this.argv))
    const {hashPassword, verbose, ...options} = flagValues(OPTION_TABLE, flags)
    if (hashPassword) return hashPasswordFromStdin()
    if (options.acl !== undefined && options.secret !== undefined) {
      // Checked here, not with oclif's `exclusive`, whose message would print the secret.
      const given = process.env.MSGBUS_SECRET !== undefined && !this.argv.some((arg) => /^(-s|--secret)/.test(arg)) ? '$MSGBUS_SECRET' : '--secret'
      this.error(`--acl and ${given} cannot be used together: with --acl, users log in with their own passwords`, {exit: 2})
    }

    await serve({...options, logger: streamLogger(verbose)})
  }
}
