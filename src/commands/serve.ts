import {readFile} from 'node:fs/promises'
import {Flags} from '@oclif/core'
import {MsgbusCommand} from '../lib/cli/command.js'
import {sizeFlag} from '../lib/cli/flags.js'
import {normalizeVerbosity} from '../lib/cli/verbosity.js'
import {createBus} from '../lib/server/bus-server.js'
import {LogLevel, streamLogger} from '../lib/server/logger.js'
import {dropPrivileges} from '../lib/server/privileges.js'

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (error) {
    throw new Error(`cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
}

export default class Serve extends MsgbusCommand {
  static override summary = 'Run the message bus server.'
  static override description = `Publishers POST to /msgbus/<channel>; subscribers GET /msgbus/<channel> (or /msgbus/ for every channel) and receive every message in one endless response: multipart/x-mixed-replace by default, or Server-Sent Events, NDJSON or bare bodies (?format=sse|ndjson|raw, or by Accept). A browser that opens a bus URL gets a live viewer page. Logs go to stderr, one line per event. SIGINT or SIGTERM ends every stream properly and exits.`

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --port 8080 --docroot ./www -v',
    '<%= config.bin %> <%= command.id %> --cert server.pem --secret s3cret',
    '<%= config.bin %> <%= command.id %> -d web/chatdemo --cors https://app.example.com',
    'sudo <%= config.bin %> <%= command.id %> -p 80 -c cert.pem -P 443 -u nobody',
  ]

  static override flags = {
    port: Flags.integer({char: 'p', summary: 'HTTP port.', default: 8888, min: 0, max: 65535}),
    address: Flags.string({char: 'l', summary: 'Address to listen on (default: all interfaces).'}),
    docroot: Flags.string({char: 'd', summary: 'Serve other paths as static files from this folder.', helpValue: '<dir>'}),
    secret: Flags.string({char: 's', summary: 'Require Basic auth with this password on every request.', env: 'MSGBUS_SECRET'}),
    cert: Flags.string({char: 'c', summary: 'PEM certificate for HTTPS (may also hold the key).', helpValue: '<file>'}),
    key: Flags.string({summary: 'PEM private key (default: read from --cert).', helpValue: '<file>', dependsOn: ['cert']}),
    'ssl-port': Flags.integer({char: 'P', summary: 'HTTPS port, served when --cert is given.', default: 4444, min: 0, max: 65535}),
    user: Flags.string({char: 'u', summary: 'Switch to this user (name or uid) after binding the ports.'}),
    verbose: Flags.integer({
      char: 'v',
      summary: 'Log more: 1 subscriptions, 2 documents, 3 publishes. Repeatable (-vvv) or a level (-v 2).',
      default: 0,
      min: 0,
      max: 3,
    }),
    'max-message-size': sizeFlag({summary: 'Largest message body.', default: 8 * 1024 * 1024}),
    'max-request-size': sizeFlag({summary: 'Largest multipart/form-data request (all its parts).', default: 64 * 1024 * 1024}),
    'max-pending': sizeFlag({summary: 'Unsent bytes past which a subscriber is slow.', default: 1024 * 1024}),
    'slow-policy': Flags.string({
      summary: 'What to do with a slow subscriber: disconnect it, or drop messages for it until it catches up.',
      options: ['disconnect', 'drop'],
      default: 'disconnect',
    }),
    'max-subscribers': Flags.integer({summary: 'Most subscriptions at once (0: no limit); past it, 503.', default: 0, min: 0}),
    heartbeat: Flags.integer({
      summary: 'Seconds between heartbeat comments on SSE streams, which keep proxies from closing idle ones (0: none).',
      default: 30,
      min: 0,
      helpValue: '<seconds>',
    }),
    cors: Flags.string({
      summary: 'Let pages from this origin (or * for any) subscribe and publish. Repeatable, or comma-separated.',
      multiple: true,
      helpValue: '<origin>',
    }),
  }

  public async run(): Promise<void> {
    const {flags} = await this.parse(Serve, normalizeVerbosity(this.argv))
    const logger = streamLogger(flags.verbose)
    const cert = flags.cert === undefined ? undefined : await readPem(flags.cert, 'certificate')
    const key = flags.key === undefined ? undefined : await readPem(flags.key, 'key')
    const server = createBus({
      port: flags.port,
      address: flags.address,
      sslPort: flags['ssl-port'],
      cert,
      key,
      docroot: flags.docroot,
      secret: flags.secret,
      maxMessageSize: flags['max-message-size'],
      maxRequestSize: flags['max-request-size'],
      maxPending: flags['max-pending'],
      slowPolicy: flags['slow-policy'] as 'disconnect' | 'drop',
      maxSubscribers: flags['max-subscribers'],
      heartbeat: flags.heartbeat,
      cors: flags.cors,
      logger,
    })
    await server.start()
    if (flags.user !== undefined) {
      const {uid, gid} = dropPrivileges(flags.user)
      logger.log(LogLevel.Always, 'listen', `running as ${flags.user} (uid ${uid}, gid ${gid})`)
    }

    const shutdown = (signal: string) => {
      logger.log(LogLevel.Always, 'stop', `${signal} received`)
      server.stop().then(() => process.exit(0))
    }

    process.once('SIGINT', shutdown)
    process.once('SIGTERM', shutdown)
  }
}
