import {Flags} from '@oclif/core'
import {MsgbusCommand} from '../lib/cli/command.js'
import {sizeFlag} from '../lib/cli/flags.js'
import {normalizeVerbosity} from '../lib/cli/verbosity.js'
import {hashPasswordFromStdin} from '../lib/cli/hash-password.js'
import {serve} from '../lib/cli/serve.js'
import type {FramingPolicy} from '../lib/server/stream/framing.js'
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

  static override flags = {
    port: Flags.integer({char: 'p', summary: 'HTTP port.', default: 8888, min: 0, max: 65535}),
    address: Flags.string({char: 'l', summary: 'Address to listen on (default: all interfaces).'}),
    docroot: Flags.string({char: 'd', summary: 'Serve other paths as static files from this folder.', helpValue: '<dir>'}),
    secret: Flags.string({char: 's', summary: 'Require Basic auth with this password on every request.', env: 'MSGBUS_SECRET'}),
    acl: Flags.string({
      summary: 'Users, password hashes and the channels each may publish and subscribe to; 401/403 for the rest. Reloaded on SIGHUP.',
      description: `One user a line; # starts a comment; fields separated by spaces or tabs:

  # user   password-hash                        publish        subscribe
  alice    $scrypt$ln=15,r=8,p=1$<salt>$<hash>  chat,alerts/*  *
  bob      $2b$10$...                           -              chat,news/*
  *        -                                    -              public/*

Hashes are scrypt (make one with --hash-password) or bcrypt ($2a$, $2b$, $2y$, as htpasswd -nbB makes). Publish and subscribe are pattern lists over channel names (comma-separated, * any run, ? one character, a leading ! excludes), case-sensitive; - is nothing. The user * is anyone without credentials (its hash is -); without a * line those get 401. Wrong credentials: 401; a channel not permitted: 403. A subscription to every channel (/msgbus/) needs some subscribe permission and gets the permitted channels only. An error in the file stops serve at start-up; on SIGHUP it is re-read, and a file with errors is logged and the old ACL kept. Not with --secret.`,
      helpValue: '<file>',
    }),
    'hash-password': Flags.boolean({
      summary: 'Read a password (one line) from stdin, print a scrypt hash of it for --acl, and exit.',
    }),
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
    'max-body-memory': sizeFlag({
      summary: 'Memory all request bodies still arriving may hold together (0: no limit); past it, publishes get 503 with Retry-After.',
      default: 256 * 1024 * 1024,
    }),
    'max-pending': sizeFlag({
      summary: 'Unsent bytes past which a subscriber is behind; it is slow once behind for --slow-timeout, or at once past --max-body-memory.',
      default: 1024 * 1024,
    }),
    'slow-timeout': Flags.integer({
      summary: 'Seconds a subscriber may stay behind (over --max-pending at every message for it) before it is slow (0: at once).',
      default: 10,
      min: 0,
      helpValue: '<seconds>',
    }),
    'slow-policy': Flags.string({
      summary: 'What to do with a slow subscriber: disconnect it, or drop messages for it until it catches up.',
      options: ['disconnect', 'drop'],
      default: 'disconnect',
    }),
    'max-subscribers': Flags.integer({summary: 'Most subscriptions at once (0: no limit); past it, 503.', default: 0, min: 0}),
    framing: Flags.string({
      summary: 'How multipart streams are framed when the URL does not say (?framing=): auto gives the 2007 framing to the 2007 clients (User-Agent libevmsg, Python-urllib/1.x or 2.x) and RFC 2046 to everyone else; 2007 or rfc2046 give it to all.',
      options: ['auto', '2007', 'rfc2046'],
      default: 'auto',
    }),
    heartbeat: Flags.integer({
      summary: 'Seconds between heartbeat comments on SSE streams, which keep proxies from closing idle ones (0: none).',
      default: 30,
      min: 0,
      helpValue: '<seconds>',
    }),
    'header-timeout': Flags.integer({summary: 'Seconds a client has to send a request head; then 408.', default: 10, min: 1, helpValue: '<seconds>'}),
    'body-timeout': Flags.integer({
      summary: 'Seconds a request body may stall before the connection is dropped (nothing is published).',
      default: 30,
      min: 1,
      helpValue: '<seconds>',
    }),
    'idle-timeout': Flags.integer({
      summary: 'Seconds a keep-alive connection may wait between requests (subscriptions are never idle).',
      default: 30,
      min: 1,
      helpValue: '<seconds>',
    }),
    'max-connections': Flags.integer({
      summary: 'Most connections open at once, HTTP and HTTPS together (default: what the open-file limit leaves room for; 0: no limit); past it, 503.',
      min: 0,
      helpValue: '<n>',
    }),
    'max-connections-per-ip': Flags.integer({summary: 'Most connections at once from one address (0: no limit); past it, 503.', default: 0, min: 0}),
    'rate-limit': Flags.integer({
      summary: 'Publishes per second per client address, in bursts of as many (0: no limit); past it, 429 with Retry-After.',
      default: 0,
      min: 0,
      helpValue: '<n>',
    }),
    'max-login-failures': Flags.integer({
      summary: 'Failed logins (--secret or --acl) per client address, in a burst and per minute; an ACL user gets ten times as many from all addresses (0: no limit). Past it, 429 with Retry-After, the password not checked.',
      default: 10,
      min: 0,
      helpValue: '<n>',
    }),
    'max-channels': Flags.integer({summary: 'Most channels with subscribers at once (0: no limit); past it, 503.', default: 0, min: 0}),
    stats: Flags.integer({
      summary: 'Log a stats line this often: subscribers, messages, memory, event-loop delay (0: never).',
      default: 0,
      min: 0,
      helpValue: '<seconds>',
    }),
    cors: Flags.string({
      summary: 'Let pages from this origin subscribe and publish, credentials and all (* for any origin: without credentials). Repeatable, or comma-separated.',
      multiple: true,
      helpValue: '<origin>',
    }),
  }

  public async run(): Promise<void> {
    const {flags} = await this.parse(Serve, normalizeVerbosity(this.argv))
    if (flags['hash-password']) return hashPasswordFromStdin()
    if (flags.acl !== undefined && flags.secret !== undefined) {
      // Checked here, not with oclif's `exclusive`, whose message would print the secret.
      const given = process.env.MSGBUS_SECRET !== undefined && !this.argv.some((arg) => /^(-s|--secret)/.test(arg)) ? '$MSGBUS_SECRET' : '--secret'
      this.error(`--acl and ${given} cannot be used together: with --acl, users log in with their own passwords`, {exit: 2})
    }

    await serve({
      port: flags.port,
      address: flags.address,
      sslPort: flags['ssl-port'],
      certFile: flags.cert,
      keyFile: flags.key,
      user: flags.user,
      docroot: flags.docroot,
      secret: flags.secret,
      acl: flags.acl,
      maxMessageSize: flags['max-message-size'],
      maxRequestSize: flags['max-request-size'],
      maxBodyMemory: flags['max-body-memory'],
      maxPending: flags['max-pending'],
      slowTimeout: flags['slow-timeout'],
      slowPolicy: flags['slow-policy'] as 'disconnect' | 'drop',
      maxSubscribers: flags['max-subscribers'],
      framing: flags.framing as FramingPolicy,
      heartbeat: flags.heartbeat,
      headerTimeout: flags['header-timeout'],
      bodyTimeout: flags['body-timeout'],
      idleTimeout: flags['idle-timeout'],
      maxConnections: flags['max-connections'],
      maxConnectionsPerIp: flags['max-connections-per-ip'],
      rateLimit: flags['rate-limit'],
      maxLoginFailures: flags['max-login-failures'],
      maxChannels: flags['max-channels'],
      statsInterval: flags.stats,
      cors: flags.cors,
      logger: streamLogger(flags.verbose),
    })
  }
}
