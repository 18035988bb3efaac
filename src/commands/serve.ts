import {MsgbusError} from '../lib/util/errors.js'
import {MsgbusCommand} from '../lib/cli/command.js'
import {ConfigFileError, readConfigFile, underFlags} from '../lib/cli/config-file.js'
import {flagValues, optionFlags} from '../lib/cli/option-flags.js'
import {OptionSources} from '../lib/cli/option-sources.js'
import {normalizeVerbosity} from '../lib/cli/verbosity.js'
import {hashPasswordFromStdin} from '../lib/cli/hash-password.js'
import {serve} from '../lib/cli/serve.js'
import {OPTION_TABLE} from '../lib/server/option-table.js'
import {streamLogger} from '../lib/server/ops/logger.js'

export default class Serve extends MsgbusCommand {
  static override summary = 'Run the message bus server.'
  static override description = `Publishers POST to /msgbus/<channel>; subscribers GET /msgbus/<channel> (or /msgbus/ for every channel) and receive every message in one endless response: multipart/x-mixed-replace by default, or Server-Sent Events, NDJSON or bare bodies (?format=sse|ndjson|raw, or by Accept). A browser that opens a bus URL gets a live viewer page. Logs go to stderr, one line per event: refused requests always, more with -v. SIGINT or SIGTERM ends every stream properly and exits.

Every option may also be given by an environment variable, MSGBUS_ and the long flag in upper snake case (MSGBUS_PORT, MSGBUS_HISTORY_DIR), or in a TOML file (--config); a flag beats the environment, which beats the file.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --port 8080 --docroot ./www -v',
    '<%= config.bin %> <%= command.id %> --cert server.pem --secret s3cret',
    '<%= config.bin %> <%= command.id %> --acl /etc/msgbus/acl   # kill -HUP reloads it',
    'read -rs PW && printf \'%s\\n\' "$PW" | <%= config.bin %> <%= command.id %> --hash-password',
    '<%= config.bin %> <%= command.id %> -d web/chatdemo --cors https://app.example.com',
    'sudo <%= config.bin %> <%= command.id %> -p 80 -c cert.pem -P 443 -u nobody',
    'MSGBUS_PORT=8080 MSGBUS_HISTORY_DIR=/var/lib/msgbus <%= config.bin %> <%= command.id %> --log-format json',
    '<%= config.bin %> <%= command.id %> --config /etc/msgbus/serve.toml',
  ]

  static override flags = optionFlags(OPTION_TABLE)

  public async run(): Promise<void> {
    const argv = normalizeVerbosity(this.argv)
    const sources = new OptionSources(argv, Serve.flags)
    const {flags, metadata} = await this.parse(Serve, argv).catch((error: Error) => {
      throw sources.blame(error)
    })
    const config = flags.config as string | undefined
    if (config !== undefined) {
      try {
        underFlags(config, Serve.flags, flags, metadata, await readConfigFile(config, Serve.flags))
      } catch (error) {
        if (error instanceof ConfigFileError) this.error(error.message, {exit: 2})
        throw error
      }
    }

    const {hashPassword, verbose, logFormat, config: _config, ...options} = flagValues(OPTION_TABLE, flags)
    if (hashPassword) return hashPasswordFromStdin()
    if (options.acl !== undefined && options.secret !== undefined) {
      // Checked here, not with oclif's `exclusive`, whose message would print the secret.
      this.error(`${sources.name('acl', config)} and ${sources.name('secret', config)} cannot be used together: with --acl, users log in with their own passwords`, {exit: 2})
    }

    await serve({...options, logger: streamLogger(verbose, {format: logFormat})}).catch((error: unknown) => {
      // Values each flag accepts alone but not together (--max-body-memory under the largest body, a bad --metrics address): a usage error too.
      if (error instanceof MsgbusError && error.code === 'ERR_MSGBUS_OPTION_INVALID') this.error(error.message, {exit: 2})
      throw error
    })
  }
}
