/**
 * Every option of the server, once: the library's defaults (options.ts), the
 * flags of `msgbus serve` (--help and the man page come from those) and the
 * README's table of them (`npm run man` writes it) all come from here. The
 * order is the order of the flags in --help's usage, the man page and the
 * README. BusServerOptions keeps the documentation for library users; the
 * OptionTable type holds this table and that interface to the same keys.
 */
import {FAN_OUT_SLICE, FAN_OUT_TURN_MS} from '../bus/bus.js'
import {LOG_FORMATS, silentLogger} from './ops/log.js'
import {ACCESS_LOG_LIMITS} from './ops/access-log.js'
import type {OptionTable} from './option-row.js'

const MiB = 1024 * 1024

export const OPTION_TABLE = {
  port: {
    kind: 'integer',
    char: 'p',
    default: 8888,
    min: 0,
    max: 65535,
    helpValue: '<port>',
    summary: 'HTTP port.',
    doc: 'HTTP port (0: any free port)',
  },
  address: {
    kind: 'string',
    char: 'l',
    // '' rather than none: the listener reads it as every interface.
    default: '',
    defaultText: 'all interfaces',
    helpValue: '<address>',
    summary: 'Address to listen on (default: all interfaces).',
    doc: 'address to listen on, for HTTP and HTTPS',
  },
  docroot: {
    kind: 'string',
    char: 'd',
    helpValue: '<dir>',
    summary: 'Serve other paths as static files from this folder.',
    doc: 'serve every non-bus path as static files from DIR: `index.html` for folders, types by extension, HEAD, ETag/Last-Modified (304), Range; confined to DIR (`..`, symlinks that leave it and sibling folders are refused)',
  },
  secret: {
    kind: 'string',
    char: 's',
    env: 'MSGBUS_SECRET',
    helpValue: '<secret>',
    summary: 'Require Basic auth with this password on every request.',
    doc: 'every request must carry Basic auth whose password is SECRET, else 401; the user name is still the sender',
  },
  acl: {
    kind: 'string',
    helpValue: '<file>',
    summary: 'Users, password hashes and the channels each may publish and subscribe to; 401/403 for the rest. Reloaded on SIGHUP.',
    description: `One user a line; # starts a comment; fields separated by spaces or tabs:

  # user   password-hash                        publish        subscribe
  alice    $scrypt$ln=15,r=8,p=1$<salt>$<hash>  chat,alerts/*  *
  bob      $2b$10$...                           -              chat,news/*
  *        -                                    -              public/*

Hashes are scrypt (make one with --hash-password) or bcrypt ($2a$, $2b$, $2y$, as htpasswd -nbB makes). Publish and subscribe are pattern lists over channel names (comma-separated, * any run, ? one character, a leading ! excludes), case-sensitive; - is nothing. The user * is anyone without credentials (its hash is -); without a * line those get 401. Wrong credentials: 401; a channel not permitted: 403. A subscription to every channel (/msgbus/) needs some subscribe permission and gets the permitted channels only. An error in the file stops serve at start-up; on SIGHUP it is re-read, and a file with errors is logged and the old ACL kept. Not with --secret.`,
    doc: 'users, their password hashes and the channels each may publish and subscribe to; see "Access control" below. Not with `--secret`',
  },
  hashPassword: {
    kind: 'boolean',
    serveOnly: true,
    env: false,
    summary: 'Read a password (one line) from stdin, print a scrypt hash of it for --acl, and exit.',
    doc: 'read a password (one line) from stdin, print a scrypt hash of it for the ACL, and exit',
  },
  certFile: {
    kind: 'string',
    serveOnly: true,
    flag: 'cert',
    char: 'c',
    helpValue: '<file>',
    summary: 'PEM certificate for HTTPS (may also hold the key).',
    doc: 'PEM certificate chain; serves HTTPS beside HTTP. The file may hold the key too',
  },
  keyFile: {
    kind: 'string',
    serveOnly: true,
    flag: 'key',
    helpValue: '<file>',
    dependsOn: ['cert'],
    defaultText: 'the key in `--cert`',
    summary: 'PEM private key (default: read from --cert).',
    doc: 'PEM private key',
  },
  sslPort: {
    kind: 'integer',
    char: 'P',
    default: 4444,
    min: 0,
    max: 65535,
    helpValue: '<port>',
    summary: 'HTTPS port, served when --cert is given.',
    doc: 'HTTPS port (0: any free port)',
  },
  user: {
    kind: 'string',
    serveOnly: true,
    char: 'u',
    // Not MSGBUS_USER: that is the client commands' credentials (send, dump), which a shell may have set.
    env: 'MSGBUS_SERVE_USER',
    helpValue: '<user>',
    summary: 'Switch to this user (name or uid) after binding the ports.',
    doc: 'switch to USER (name or uid) and its groups once the ports are bound: start as root to bind 80/443',
  },
  workers: {
    kind: 'string',
    serveOnly: true,
    helpValue: '<n|auto>',
    summary: 'Serve from N worker processes, every message in one order across them (auto: one per core); 1 or absent: one process.',
    description: `The primary process forks the workers, shares the ports out among them (Node's cluster, connections handed to each in turn), orders every worker's messages (one id sequence; history and Last-Event-ID resume work on any worker), holds --history-dir, serves --metrics and logs --stats for all of them, forks a worker again when one dies, passes SIGHUP on, and stops them all on SIGINT or SIGTERM. Msgbus-Subscribers counts the subscribers of every worker. The per-client and per-server limits (--max-connections, --max-connections-per-ip, --rate-limit, --max-login-failures, --max-subscribers, --max-channels) are split: each worker enforces limit/N, rounded down and at least 1. Not with --user.`,
    doc: 'serve from N worker processes (`auto`: one per core), every message in one order across them; limits are split among them; see "Workers"',
  },
  verbose: {
    kind: 'integer',
    serveOnly: true,
    char: 'v',
    default: 0,
    min: 0,
    max: 3,
    helpValue: '<level>',
    summary: 'Log more: 1 subscriptions, 2 documents, 3 publishes. Repeatable (-vvv) or a level (-v 2).',
    doc: 'log more: `-v` subscriptions, `-vv` documents too, `-vvv` publishes too; or a level, `-v 2`',
  },
  logFormat: {
    kind: 'enum',
    serveOnly: true,
    values: LOG_FORMATS,
    default: 'text',
    summary: 'Log lines as text, or as one JSON object a line (time, level, event, msg and the line\'s fields) for log shippers.',
    doc: '`text`, or `json`: one object a line, `{"time","level","event","msg",...}` with the line\'s facts as fields; see "Logs"',
  },
  config: {
    kind: 'string',
    serveOnly: true,
    helpValue: '<file>',
    summary: 'Read options from this TOML file (keys are the long flags: port = 8080, cors = ["https://a.example"]); flags and MSGBUS_ variables win.',
    doc: 'read options from a TOML file, keys named as the long flags; flags and the environment win; see "Configuration"',
  },
  maxMessageSize: {
    kind: 'size',
    default: 8 * MiB,
    summary: 'Largest message body.',
    doc: 'largest message body; more is `413`',
  },
  maxRequestSize: {
    kind: 'size',
    default: 64 * MiB,
    summary: 'Largest multipart/form-data request (all its parts).',
    doc: 'largest multipart/form-data request, all its parts together',
  },
  maxBodyMemory: {
    kind: 'size',
    default: 256 * MiB,
    summary: 'Memory all request bodies still arriving may hold together (0: no limit); past it, publishes get 503 with Retry-After.',
    doc: 'memory all request bodies still arriving may hold together; past it, publishes get `503` with `Retry-After` (see below). 0: no limit',
  },
  maxPending: {
    kind: 'size',
    default: MiB,
    summary: 'Unsent bytes past which a subscriber is behind; it is slow once behind for --slow-timeout, or at once past --max-body-memory.',
    doc: 'unsent bytes past which a subscriber is *behind*; see "Slow subscribers" below',
  },
  slowTimeout: {
    kind: 'integer',
    default: 10,
    min: 0,
    helpValue: '<seconds>',
    summary: 'Seconds a subscriber may stay behind (over --max-pending at every message for it) before it is slow (0: at once).',
    doc: 'a subscriber that stays behind for this many seconds is *slow* (0: as soon as it is behind)',
  },
  slowPolicy: {
    kind: 'enum',
    values: ['disconnect', 'drop'],
    default: 'disconnect',
    summary: 'What to do with a slow subscriber: disconnect it, or drop messages for it until it catches up.',
    doc: '`disconnect` a slow subscriber (it knows it lost messages and can reconnect), or `drop` messages for it until it catches up',
  },
  maxSubscribers: {
    kind: 'integer',
    default: 0,
    min: 0,
    zeroMeans: 'no limit',
    helpValue: '<n>',
    summary: 'Most subscriptions at once (0: no limit); past it, 503.',
    doc: 'more subscriptions than N at once are refused with `503`',
  },
  framing: {
    kind: 'enum',
    // auto first, the default; then the two framings a URL can name.
    values: ['auto', '2007', 'rfc2046'],
    default: 'auto',
    summary:
      'How multipart streams are framed when the URL does not say (?framing=): auto gives the 2007 framing to the 2007 clients (User-Agent libevmsg, Python-urllib/1.x or 2.x) and RFC 2046 to everyone else; 2007 or rfc2046 give it to all.',
    doc: 'how multipart streams are framed when the URL does not say (`?framing=`): `auto` frames them the 2007 way for the 2007 clients, known by their User-Agent, and by RFC 2046 for everyone else; `2007` or `rfc2046` frame them all that way; see "The 2007 clients"',
  },
  history: {
    kind: 'integer',
    default: 10_000,
    min: 0,
    helpValue: '<n>',
    summary: 'Messages kept for subscribers that resume (Last-Event-ID, ?since=), all channels together (0: no history).',
    doc: 'messages kept, all channels together, for subscribers that resume (`Last-Event-ID`, `?since=`); the oldest go first past any of the three limits; 0: none kept, and every resume from an older message has a gap; see "History and resume"',
  },
  historyBytes: {
    kind: 'size',
    default: 64 * MiB,
    summary: 'Bytes of messages kept (bodies and headers; 0: no limit but --history).',
    doc: 'bytes of messages kept, bodies and header strings together (0: no limit but `--history`)',
  },
  historyAge: {
    kind: 'duration',
    default: 3600,
    zeroMeans: 'no limit',
    summary: 'How long a message is kept (90s, 10m, 1h, 2d; 0: no limit but --history).',
    doc: 'how long a message is kept: `90s`, `10m`, `1h`, `2d`, or seconds (0: no limit but `--history`)',
  },
  historyDir: {
    kind: 'string',
    helpValue: '<dir>',
    summary: 'Keep the history in append-only files in this folder, read back at start-up, so it survives a restart.',
    doc: 'keep the history in append-only segment files in DIR (made if missing), read back at start-up: resumes and ids carry on across restarts; see "History on disk"',
  },
  historySync: {
    kind: 'enum',
    values: ['always', 'interval', 'never'],
    default: 'always',
    summary:
      'With --history-dir: always answers a publish once its message is on disk (fdatasync, shared by the publishes of a moment); interval once it is written, syncing once a second; never once it is written, leaving syncing to the OS.',
    doc: 'with `--history-dir`: `always` answers a publish (`204`) once its message is on disk (one fdatasync for all the publishes of a moment); `interval` once it is written to the file, with an fdatasync every second; `never` once it is written, leaving syncing to the operating system; see "History on disk"',
  },
  bus: {
    kind: 'string',
    serveOnly: true,
    env: 'MSGBUS_BUS',
    helpValue: '<url>',
    summary: 'Share one message log with other nodes: redis://[user:pass@]HOST:PORT[/DB][?stream=NAME] (a Redis stream) or nats://[user:pass@]HOST:PORT[?stream=NAME] (NATS JetStream). Every node gets every message, in one order, with one id sequence; clients resume on any node.',
    doc: 'join the nodes that share one message log: a Redis stream, `redis://[user:pass@]HOST:PORT[/DB][?stream=NAME]` (stream `msgbus` by default), or NATS JetStream, `nats://[user:pass@]HOST:PORT[?stream=NAME&storage=file|memory]`: every message published on any node reaches the subscribers of every node, in one order, with the same ids, and a client resumes on any node; not with `--history-dir`; see "Many machines"',
  },
  heartbeat: {
    kind: 'integer',
    default: 30,
    min: 0,
    helpValue: '<seconds>',
    summary: 'Seconds between heartbeat comments on SSE streams, which keep proxies from closing idle ones (0: none).',
    doc: 'a comment line on every SSE stream this often, so proxies do not close quiet ones (0: none)',
  },
  headerTimeout: {
    kind: 'integer',
    default: 10,
    min: 1,
    helpValue: '<seconds>',
    summary: 'Seconds a client has to send a request head; then 408.',
    doc: "a client must send a request's whole head within this many seconds (slowloris), else `408` and the connection closes",
  },
  bodyTimeout: {
    kind: 'integer',
    default: 30,
    min: 1,
    helpValue: '<seconds>',
    summary: 'Seconds a request body may stall before the connection is dropped (nothing is published).',
    doc: 'a request body that stalls (no byte) for this many seconds is dropped with its connection; nothing of it is published',
  },
  idleTimeout: {
    kind: 'integer',
    default: 30,
    min: 1,
    helpValue: '<seconds>',
    summary: 'Seconds a keep-alive connection may wait between requests (subscriptions are never idle).',
    doc: 'a keep-alive connection waiting for its next request closes after this many seconds; subscriptions are never idle-closed',
  },
  maxConnections: {
    kind: 'integer',
    min: 0,
    // Computed at start-up (bus-server's connectionCap), so none here.
    defaultText: 'what the open-file limit leaves room for',
    helpValue: '<n>',
    summary:
      'Most connections open at once, HTTP and HTTPS together (default: what the open-file limit leaves room for; 0: no limit); past it, 503.',
    doc: 'connections open at once, HTTP and HTTPS together; past it a new HTTP connection gets `503` (with `Retry-After`) and is closed, a TLS one is closed before its handshake; logged once when it begins and once when it is over. The default is `ulimit -n` less a reserve for the server\'s own files (64, or 1/32 of the limit if more): 960 at 1,024, 19,375 at 20,000. 0: no limit',
  },
  maxConnectionsPerIp: {
    kind: 'integer',
    default: 0,
    min: 0,
    zeroMeans: 'no limit',
    helpValue: '<n>',
    summary: 'Most connections at once from one address (0: no limit); past it, 503.',
    doc: "a client address's next connection past N gets `503` (with `Retry-After`) and is closed",
  },
  rateLimit: {
    kind: 'integer',
    default: 0,
    min: 0,
    zeroMeans: 'no limit',
    helpValue: '<n>',
    summary: 'Publishes per second per client address, in bursts of as many (0: no limit); past it, 429 with Retry-After.',
    doc: 'publishes per second per client address, in bursts of up to N (a token bucket); past it `429` with `Retry-After`',
  },
  maxLoginFailures: {
    kind: 'integer',
    default: 10,
    min: 0,
    helpValue: '<n>',
    summary:
      'Failed logins (--secret or --acl) per client address, in a burst and per minute; an ACL user gets ten times as many from all addresses (0: no limit). Past it, 429 with Retry-After, the password not checked.',
    doc: 'failed logins (wrong `--secret` or ACL password, unknown user) per client address, in a burst and per minute; an ACL user name gets ten times as many from all addresses together (0: no limit). Past it `429` with `Retry-After`, the password not checked; see "Access control"',
  },
  maxChannels: {
    kind: 'integer',
    default: 0,
    min: 0,
    zeroMeans: 'no limit',
    helpValue: '<n>',
    summary: 'Most channels with subscribers at once (0: no limit); past it, 503.',
    doc: 'a subscription that would make more than N channels with subscribers gets `503`',
  },
  statsInterval: {
    kind: 'integer',
    flag: 'stats',
    default: 0,
    min: 0,
    zeroMeans: 'never',
    helpValue: '<seconds>',
    summary: 'Log a stats line this often: subscribers, messages, memory, event-loop delay (0: never).',
    doc: 'log a `stats` line this often: connections, subscribers, channels, messages and deliveries per second, slow subscribers, connections refused at the cap, memory held by request bodies (`bodies=`) and publishes refused for it (`busy=`), messages and bytes kept in the history (`kept=`, `kept-bytes=`), RSS, heap, event-loop delay p50/p99/max',
  },
  metrics: {
    kind: 'string',
    helpValue: '<[address:]port>',
    summary:
      'Serve /metrics (Prometheus), /livez and /readyz on a listener of their own, at this port and address (default address 127.0.0.1; 0: any free port).',
    description: `GET /metrics: Prometheus text, in the msgbus_ namespace: messages published, deliveries by stream format, subscribers and channels now, slow subscribers cut and messages dropped, bytes in and out, publish latency, HTTP answers by status, the history's size; and prom-client's process and event-loop metrics. GET /livez: 200 while the event loop runs. GET /readyz: 200 when the server is ready, else 503; one line per check (listeners bound, history store writing, not shutting down). Plain text; HEAD too; any other path is 404. There is no authentication on this listener: keep it on a private address.`,
    doc: 'serve `/metrics` (Prometheus text), `/livez` and `/readyz` on a listener of their own, never on the bus\'s ports: `9464` is `127.0.0.1:9464`; `0.0.0.0:9464` or `[::]:9464` to be scraped from other machines; see "Metrics and health"',
  },
  cors: {
    kind: 'list',
    helpValue: '<origin>',
    summary:
      'Let pages from this origin subscribe and publish, credentials and all (* for any origin: without credentials). Repeatable, or comma-separated.',
    doc: 'let pages from ORIGIN (`https://app.example`; repeatable or comma-separated) subscribe and publish, credentials and all, or pages from anywhere (`*`) without credentials; without it no page of another origin publishes; see below',
  },
  cert: {noFlag: 'serve takes a file (certFile), read at start-up and again on SIGHUP'},
  key: {noFlag: 'serve takes a file (keyFile)'},
  boundary: {noFlag: 'a random one per server is what a deployment wants; tests fix it'},
  link: {noFlag: 'serve makes one from --workers (a worker\'s link to its primary) and --bus (a Redis stream)'},
  fanOutSlice: {noFlag: 'a tuning knob for benchmarks, not deployments', default: FAN_OUT_SLICE},
  fanOutTurnMs: {noFlag: 'a tuning knob for benchmarks and tests of the slicing, not deployments', default: FAN_OUT_TURN_MS},
  logger: {noFlag: 'serve makes one from --verbose and --log-format', default: silentLogger},
  accessLog: {noFlag: 'the budget is chosen for deployments (ops/access-log.ts); tests shrink it', default: ACCESS_LOG_LIMITS},
} satisfies OptionTable
