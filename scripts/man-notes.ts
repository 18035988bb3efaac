/**
 * What the man pages say that oclif's metadata cannot carry (plain text,
 * escaped by scripts/man.ts): what each exit
 * status means for each command, the environment variables read outside
 * oclif's flags, and which flags come from the 2007 tools. scripts/man.ts
 * writes them into the pages; test/man.test.ts checks the 2007 table against
 * the commands' flags, so a flag letter taken by the 2007 tools cannot be
 * given another meaning unnoticed.
 */

/**
 * Exit statuses, shared by every command (issue 15): 0 success; 1 failure,
 * an error or data lost; 2 a usage error. Per command, what 0 and 1 mean.
 */
export const EXIT_STATUS: Record<string, {success: string; failure: string}> = {
  dump: {
    success: 'The stream ended as asked (--count reached, --poll done, SIGINT or SIGTERM) and no message was lost.',
    failure:
      'An error that retrying cannot heal (unknown host, untrusted certificate, refused credentials), --timeout before --count messages, or messages lost (a gap the server reported, or a possible loss across a reconnect to a server without ids) unless --allow-loss.',
  },
  send: {
    success: 'Every message (every line, with --lines) was accepted by the server.',
    failure: 'A message was refused, or not sent: an unreadable file, a server that could not be reached, or lines lost (with --lines, the final report says how many).',
  },
  serve: {
    success: 'The server stopped at SIGINT or SIGTERM, after closing every stream properly; or --hash-password printed a hash.',
    failure: 'The server could not start (a port in use, an unreadable certificate or ACL, a history folder it cannot use) or failed while running.',
  },
  'test-pub': {
    success: 'Every message published was accepted.',
    failure: 'A message was refused or went unanswered (the server closed the connection), or the server could not be reached.',
  },
  'test-sub': {
    success: 'Every subscription connected and no message was lost.',
    failure: 'A message was lost (a gap in a publisher\'s sequence), or a subscription failed.',
  },
}

/** For a command missing from EXIT_STATUS. */
export const EXIT_STATUS_DEFAULT = {success: 'Success.', failure: 'A failure: an error, or data lost (a message or a line not delivered).'}

/** Variables that every client command (one with the --url flag) reads, beside its flags' own `env`; plain text. */
export const CLIENT_ENV: Array<{name: string; text: string}> = [
  {name: 'MSGBUS_URL', text: 'The server a channel name is resolved against, when --url is not given (default http://localhost:8888).'},
  {name: 'MSGBUS_USER', text: 'The user to authenticate as, user or user:password, when --user is not given.'},
  {
    name: 'MSGBUS_PASSWORD',
    text: 'The password of the user that --user or MSGBUS_USER names without one. Without it, on a terminal, the password is asked for (not echoed).',
  },
]

export interface Compat2007 {
  /** The 2007 program, as its page names it. */
  tool: string
  /** Each 2007 flag: its letter, the long flag it is here, and what it takes (as the 2007 usage said). */
  flags: Array<{char: string; flag: string; value?: string}>
  /** What differs, if anything. */
  note?: string
}

/**
 * The flags of the 2007 msgbus tools (github.com/dugsong/msgbus: msgbus.c,
 * test-pub.c, test-sub.c, python/msgdump.py, python/msgsend.py), by the
 * command that stands for each tool. Every one of them also had -h for its
 * usage, as every command here has.
 */
export const COMPAT_2007: Record<string, Compat2007> = {
  serve: {
    tool: 'msgbus',
    flags: [
      {char: 'c', flag: 'cert', value: 'CERTFILE'},
      {char: 'd', flag: 'docroot', value: 'DIRECTORY'},
      {char: 'l', flag: 'address', value: 'ADDRESS'},
      {char: 'p', flag: 'port', value: 'PORT'},
      {char: 'P', flag: 'ssl-port', value: 'SSL_PORT'},
      {char: 's', flag: 'secret', value: 'SECRET'},
      {char: 'u', flag: 'user', value: 'USER'},
      {char: 'v', flag: 'verbose'},
    ],
    note: 'The 2007 server listened on every address by default, as this one does.',
  },
  dump: {
    tool: 'msgdump.py',
    flags: [
      {char: 'q', flag: 'quiet'},
      {char: 's', flag: 'sender', value: 'SENDER'},
      {char: 't', flag: 'type', value: 'TYPE'},
    ],
    note: 'As msgdump.py, the argument is a URL or a channel name, and no argument means every channel.',
  },
  send: {
    tool: 'msgsend.py',
    flags: [{char: 't', flag: 'type', value: 'TYPE'}],
    note: "msgsend.py's -f FILE is a FILE argument here. Its -t defaulted to text/html; here the type is found from the data when -t is not given.",
  },
  'test-pub': {
    tool: 'test-pub',
    flags: [
      {char: 'c', flag: 'channel', value: 'CHANNEL'},
      {char: 'f', flag: 'file', value: 'FILENAME'},
      {char: 'l', flag: 'address', value: 'ADDRESS'},
      {char: 'p', flag: 'port', value: 'PORT'},
      {char: 'r', flag: 'rate', value: 'MSGS_PER_SEC'},
      {char: 's', flag: 'ssl'},
      {char: 't', flag: 'type', value: 'TYPE'},
    ],
    note: 'The 2007 test-pub sent one message a second without -r; this one, without --rate, publishes as fast as the server takes them, and says so.',
  },
  'test-sub': {
    tool: 'test-sub',
    flags: [
      {char: 'c', flag: 'channel', value: 'CHANNEL'},
      {char: 'l', flag: 'address', value: 'ADDRESS'},
      {char: 'p', flag: 'port', value: 'PORT'},
      {char: 'n', flag: 'connections', value: 'NUM_CONNECTIONS'},
      {char: 's', flag: 'ssl'},
    ],
  },
}
