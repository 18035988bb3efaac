/**
 * Writes the manual pages in man/ from the commands' own oclif metadata, so
 * that `msgbus COMMAND --help` and `man msgbus-COMMAND` never disagree.
 *
 *   npm run man                                   write man/msgbus.1 and man/msgbus-<command>.1,
 *                                                 and README.md's table of serve options
 *   node --import tsx/esm scripts/man.ts --check  exit 1, naming the stale pages, when man/ or the README differs
 *   ... [--dir DIR] [--readme FILE]               write or check DIR instead of man/, FILE instead of README.md
 *
 * The commands are read from src/ (through tsx), not from a possibly stale
 * dist/ or oclif.manifest.json: the oclif config is loaded from the project
 * root with auto-transpiling on and the root plugin's manifest ignored, and
 * each command's `load()` gives its summary, description, examples, args and
 * flags. Every command of the project gets a page, so new commands are picked
 * up with no change here. The overview page (man/msgbus.1) adds a description
 * of the bus itself, written below.
 *
 * The README's synopsis and table of `msgbus serve` options come from the
 * same option table as serve's flags (scripts/readme-options.ts); they sit
 * between marker comments, and the rest of the README is left alone.
 *
 * The output depends only on the sources and package.json (no date; the
 * version is the page's source), so a run with nothing changed rewrites
 * nothing and `git diff man/` shows only real changes.
 */
import {existsSync} from 'node:fs'
import {mkdir, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join, relative, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {Command, CommandHelp, Config, Plugin, settings} from '@oclif/core'
import {CLIENT_ENV, COMPAT_2007, EXIT_STATUS, EXIT_STATUS_DEFAULT} from './man-notes.js'
import {serveOptionsSection, spliceSection} from './readme-options.js'
import {NATIVE_SEND_ENV, NATIVE_SEND_NO_RING, NATIVE_SEND_OFF} from '../src/lib/server/stream/native-send.js'
import {NATIVE_READ_ENV, NATIVE_READ_NO_RING, NATIVE_READ_OFF} from '../src/lib/load/batch-reader.js'
import {NATIVE_CORK_ENV} from '../src/lib/server/http/answer-cork.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** The pages this script owns in man/: msgbus.1 and msgbus-*.1. */
const OWN_PAGE = /^msgbus(?:-[^/]+)?\.1$/

// ---------------------------------------------------------------------------
// roff escaping

/** Non-ASCII as groff's \[uXXXX] (any input encoding then works); tabs and other controls as spaces. */
function escapeChars(text: string): string {
  return text.replace(/[^\x20-\x7e]/gu, (ch) => {
    const code = ch.codePointAt(0)!
    if (code < 0x20 || code === 0x7f) return ' '
    return `\\[u${code.toString(16).toUpperCase().padStart(4, '0')}]`
  })
}

/** A text line must not start with a control character (`.` or `'`). */
function guardLine(line: string): string {
  return /^[.']/.test(line) ? `\\&${line}` : line
}

/**
 * Prose for a roff text line: backslashes escaped, and every hyphen of an
 * option (`-v`, `--max-pending`) written `\-`, a minus sign, so it can be
 * copied to a shell; other hyphens (`x-mixed-replace`) stay hyphens.
 */
export function roffText(text: string): string {
  const escaped = escapeChars(text.replace(/\\/g, '\\e'))
  return escaped.replace(/(^|[^\w\\-])(--?[A-Za-z0-9][\w-]*)/g, (_, before: string, option: string) => `${before}${option.replace(/-/g, '\\-')}`)
}

/** Something typed (a command, a flag, a value): every hyphen is `\-`. */
export function roffCode(text: string): string {
  return escapeChars(text.replace(/\\/g, '\\e')).replace(/-/g, '\\-')
}

const bold = (code: string): string => `\\fB${roffCode(code)}\\fR`
const italic = (code: string): string => `\\fI${roffCode(code)}\\fR`

/**
 * Paragraphs of prose (blank-line separated) as roff: filled text, except a
 * paragraph whose lines are all indented, which is kept as it is (an example).
 */
export function roffParagraphs(text: string): string[] {
  const out: string[] = []
  const paragraphs = text.replace(/\r\n/g, '\n').split(/\n[ \t]*\n/).filter((p) => p.trim() !== '')
  for (const [index, paragraph] of paragraphs.entries()) {
    if (index > 0) out.push('.PP')
    const lines = paragraph.split('\n').filter((line) => line.trim() !== '')
    if (lines.every((line) => /^\s/.test(line))) {
      const indent = Math.min(...lines.map((line) => /^\s*/.exec(line)![0].length))
      out.push('.RS 4', '.nf', ...lines.map((line) => guardLine(roffCode(line.slice(indent)))), '.fi', '.RE')
    } else {
      out.push(...lines.map((line) => guardLine(roffText(line.trim()))))
    }
  }

  return out
}

/** A quoted macro argument. */
function arg(text: string): string {
  return `"${escapeChars(text.replace(/\\/g, '\\e')).replace(/"/g, '\\(dq')}"`
}

/** NAME-line description: no final period, lower case unless it starts an acronym. */
function nameDescription(text: string): string {
  const first = text.trim().split('\n')[0].replace(/\.$/, '')
  return /^[A-Z][a-z]/.test(first) ? first[0].toLowerCase() + first.slice(1) : first
}

// ---------------------------------------------------------------------------
// oclif metadata

type Flag = Command.Flag
type Arg = Command.Arg

interface CommandInfo {
  /** oclif's id, with `:` between topics. */
  id: string
  /** As typed (topics joined with the CLI's topic separator): `serve`, `test pub`. */
  name: string
  /** The page's name without the section: `msgbus-serve`. */
  page: string
  cmd: Command.Class
  help: CommandHelp
  summary?: string
  description?: string
  flags: Array<[string, Flag]>
  args: Array<[string, Arg]>
}

/** Loads the oclif config of the project at `root`, reading the commands from src/. */
export async function loadConfig(root = ROOT): Promise<Config> {
  // Map dist/commands back to src/commands and import the .ts through tsx,
  // whatever NODE_ENV says, so the pages follow the source being edited.
  settings.enableAutoTranspile = true
  // An oclif.manifest.json (a packaging artefact) would pin the command list.
  const rootPlugin = new Plugin({root, isRoot: true, ignoreManifest: true})
  await rootPlugin.load()
  return Config.load({root, plugins: new Map([[rootPlugin.name, rootPlugin]])})
}

/** What the help would show as a default (oclif's own rule for the manifest), or undefined. */
async function defaultOf(flagOrArg: Flag | Arg): Promise<unknown> {
  const item = flagOrArg as {default?: unknown; defaultHelp?: unknown; noCacheDefault?: boolean}
  if (item.noCacheDefault) return undefined
  try {
    if (typeof item.defaultHelp === 'function') return await item.defaultHelp({flags: {}, options: flagOrArg})
    if (item.defaultHelp !== undefined) return item.defaultHelp
    if (typeof item.default === 'function') return await item.default({flags: {}, options: flagOrArg})
    return item.default
  } catch {
    return undefined
  }
}

function showDefault(value: unknown): string | undefined {
  if (value === undefined || value === null || value === false || value === '') return undefined
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map(String).join(', ')
  return String(value)
}

async function commandInfos(config: Config): Promise<CommandInfo[]> {
  // The project's own commands (not plugin-help's `help`), once each: the
  // plugin's list has no alias entries, unlike config.commands.
  const rootPlugin = config.getPluginsList().find((plugin) => plugin.isRoot)
  if (!rootPlugin) throw new Error(`no oclif root plugin in ${config.root}`)
  const loadables = rootPlugin.commands
    .filter((c) => !c.hidden)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const infos: CommandInfo[] = []
  for (const loadable of loadables) {
    const cmd = await loadable.load()
    const name = loadable.id.split(':').join(config.topicSeparator)
    // Renders <%= config.bin %> and <%= command.id %> as the help does (with
    // the id spelt with the CLI's topic separator, as the help does too).
    const help = new CommandHelp({...loadable, id: name}, config, {maxWidth: 80})
    const render = (text: string | undefined) => (text === undefined || text.trim() === '' ? undefined : help.render(text))
    const allFlags: Record<string, Flag> = {...cmd.baseFlags, ...cmd.flags}
    // The help flag (MsgbusCommand's -h, --help) has its own line on the page.
    const flags = Object.entries(allFlags).filter(([name, flag]) => !flag.hidden && name !== 'help')
    if (cmd.enableJsonFlag && !('json' in allFlags)) {
      flags.unshift(['json', {name: 'json', type: 'boolean', allowNo: false, description: 'Format output as json.'} as Flag])
    }

    const args = Object.entries((cmd.args ?? {}) as Record<string, Arg>).filter(([, a]) => !a.hidden)
    infos.push({
      id: loadable.id,
      name,
      page: `${config.bin}-${loadable.id.replace(/[:\s]+/g, '-')}`,
      cmd,
      help,
      summary: render(cmd.summary),
      description: render(cmd.description),
      flags,
      args,
    })
  }

  return infos
}

/** The placeholder for an option's value, as oclif's help shows it (without the angle brackets). */
function valueOf(flag: Flag): string {
  if (flag.type !== 'option') return ''
  const values = flag.helpValue === undefined ? undefined : typeof flag.helpValue === 'string' ? [flag.helpValue] : flag.helpValue
  const dots = flag.multiple ? '...' : ''
  if (values) return values.map((v) => italic(v.replace(/^<(.*)>$/, '$1')) + dots).join(' ')
  if (flag.options) return flag.options.map((o) => bold(o)).join('|') + dots
  return italic('value') + dots
}

function flagNames(name: string, flag: Flag): string {
  const long = flag.type === 'boolean' && flag.allowNo ? `--[no-]${name}` : `--${name}`
  return flag.char ? `${bold(`-${flag.char}`)}, ${bold(long)}` : bold(long)
}

/** `.SY` sets its argument in bold, like any command name. */
function synopsisStart(bin: string, name: string): string {
  return `.SY ${arg(`${bin} ${name}`).replace(/-/g, '\\-')}`
}

function synopsis(info: CommandInfo, config: Config): string[] {
  const {cmd} = info
  if (cmd.usage !== undefined) {
    const usages = Array.isArray(cmd.usage) ? cmd.usage : [cmd.usage]
    return usages.flatMap((usage) => {
      const rest = info.help
        .render(usage)
        .replace(/^<%= command.id %>/, '')
        .replace(new RegExp(`^(${info.id}|${info.name})\\b`), '')
        .trim()
      return [synopsisStart(config.bin, info.name), ...(rest ? [guardLine(roffCode(rest))] : []), '.YS']
    })
  }

  const items = info.flags.map(([name, flag]) => {
    const word = flag.char ? bold(`-${flag.char}`) : bold(flag.type === 'boolean' && flag.allowNo ? `--[no-]${name}` : `--${name}`)
    const item = flag.type === 'option' ? `${word}\\ ${valueOf(flag)}` : word
    return flag.required ? item : `[${item}]`
  })
  for (const [name, a] of info.args) {
    const dots = a.multiple || cmd.strict === false ? '...' : ''
    const word = italic(name.toUpperCase()) + dots
    items.push(a.required ? word : `[${word}]`)
  }

  return [synopsisStart(config.bin, info.name), ...items, '.YS']
}

async function flagEntry(name: string, flag: Flag, info: CommandInfo): Promise<string[]> {
  const out = ['.TP', flag.helpLabel ? bold(flag.helpLabel) : flagNames(name, flag) + (flag.type === 'option' ? `=${valueOf(flag)}` : '')]
  const summary = flag.summary ?? flag.description
  const render = (text: string) => info.help.render(text)
  if (summary) out.push(...roffParagraphs(render(summary)))
  const notes: string[] = []
  if (flag.required) notes.push('Required.')
  if (flag.type === 'option') {
    const value = showDefault(await defaultOf(flag))
    if (value !== undefined) notes.push(`Default: ${bold(value)}.`)
    if (flag.options && flag.helpValue !== undefined) notes.push(`One of: ${flag.options.map((o) => bold(o)).join(', ')}.`)
    if (flag.multiple) notes.push('May be given more than once.')
  }

  if (flag.env) notes.push(`Environment: ${bold(flag.env)}.`)
  if (flag.dependsOn?.length) notes.push(`Needs ${flag.dependsOn.map((d) => bold(`--${d}`)).join(', ')}.`)
  if (flag.exclusive?.length) notes.push(`Not with ${flag.exclusive.map((d) => bold(`--${d}`)).join(', ')}.`)
  if (flag.exactlyOne?.length) notes.push(`Exactly one of ${flag.exactlyOne.map((d) => bold(`--${d}`)).join(', ')}.`)
  if (flag.atLeastOne?.length) notes.push(`At least one of ${flag.atLeastOne.map((d) => bold(`--${d}`)).join(', ')}.`)
  const aliases = [...(flag.charAliases ?? []).map((c) => `-${c}`), ...(flag.aliases ?? []).map((a) => `--${a}`)]
  if (aliases.length > 0) notes.push(`Also ${aliases.map((a) => bold(a)).join(', ')}.`)
  if (flag.deprecated) {
    const to = typeof flag.deprecated === 'object' && flag.deprecated.to ? `; use ${bold(`--${flag.deprecated.to}`)}` : ''
    notes.push(`Deprecated${to}.`)
  }

  if (notes.length > 0) out.push(...(summary ? ['.br'] : []), notes.join(' '))
  if (flag.summary && flag.description) out.push('.IP', ...roffParagraphs(render(flag.description)).map((l) => (l === '.PP' ? '.IP' : l)))
  return out
}

async function argEntry(name: string, a: Arg, info: CommandInfo): Promise<string[]> {
  const out = ['.TP', italic(name.toUpperCase())]
  if (a.description) out.push(...roffParagraphs(info.help.render(a.description)))
  const notes: string[] = []
  if (a.required) notes.push('Required.')
  const value = showDefault(await defaultOf(a))
  if (value !== undefined) notes.push(`Default: ${bold(value)}.`)
  if (a.options) notes.push(`One of: ${a.options.map((o) => bold(String(o))).join(', ')}.`)
  if (notes.length > 0) out.push(...(a.description ? ['.br'] : []), notes.join(' '))
  return out
}

/** oclif's examples: `cmd`, `description\ncmd...`, or {description, command}; commands get a `$ `. */
function examples(info: CommandInfo, config: Config): string[] {
  const list = info.cmd.examples ?? []
  const out: string[] = []
  const isCommand = (line: string) => line.startsWith(`${config.bin} `) || line === config.bin || line.startsWith('$ ')
  const commandLine = (line: string) => guardLine(roffCode(line.startsWith('$ ') ? line : `$ ${line}`))
  // Examples without a description of their own share one block.
  let block: string[] = []
  const flush = () => {
    if (block.length > 0) out.push('.PP', '.RS 4', '.EX', ...block, '.EE', '.RE')
    block = []
  }

  for (const example of list) {
    let description: string | undefined
    let commands: string[]
    if (typeof example === 'string') {
      const lines = info.help.render(example).split(/\r?\n/).filter((l) => l.trim() !== '')
      if (lines.length >= 2 && !isCommand(lines[0]) && lines.slice(1).every((l) => isCommand(l))) {
        description = lines[0]
        commands = lines.slice(1)
      } else {
        commands = lines
      }
    } else {
      description = info.help.render(example.description)
      commands = [info.help.render(example.command)]
    }

    if (description) {
      flush()
      out.push('.PP', ...roffParagraphs(description))
    }

    block.push(...commands.map((c) => commandLine(c.trim())))
    if (description) flush()
  }

  flush()
  return out
}

function header(title: string, version: string, name: string): string[] {
  return [
    `.\\" ${name} \\- generated by scripts/man.ts from the commands' oclif metadata.`,
    '.\\" Do not edit: change the command, then run `npm run man`.',
    `.TH ${title} 1 "" ${arg(`msgbus ${version}`)} "msgbus manual"`,
    // No hyphenation: URL paths and flag names are not to be split (HY is
    // what groff's .SY/.YS and .EX/.EE restore hyphenation to).
    '.nr HY 0',
    '.hy 0',
  ]
}

function seeAlso(pages: string[]): string {
  return pages.map((p) => `\\fB${roffCode(p.replace(/\(\d\)$/, ''))}\\fR(${/\((\d)\)$/.exec(p)?.[1] ?? '1'})`).join(',\n')
}

async function commandPage(info: CommandInfo, all: CommandInfo[], config: Config): Promise<string> {
  const lines = header(info.page.toUpperCase(), config.version, `${info.page}.1`)
  lines.push('.SH NAME', `${roffCode(info.page)} \\- ${roffText(nameDescription(info.summary ?? info.description ?? info.name))}`)
  lines.push('.SH SYNOPSIS', ...synopsis(info, config))

  lines.push('.SH DESCRIPTION')
  const text = [info.summary, info.description].filter((t): t is string => t !== undefined).join('\n\n')
  lines.push(...roffParagraphs(text || info.name))
  if (info.cmd.aliases?.length) {
    lines.push('.PP', `Also run as ${info.cmd.aliases.map((a) => bold(`${config.bin} ${a.split(':').join(config.topicSeparator)}`)).join(', ')}.`)
  }

  if (info.cmd.state === 'deprecated' || info.cmd.deprecationOptions) lines.push('.PP', 'This command is deprecated.')

  if (info.args.length > 0) {
    lines.push('.SH ARGUMENTS')
    for (const [name, a] of info.args) lines.push(...(await argEntry(name, a, info)))
  }

  // Flags in the order the command declares them (related flags stay
  // together), then oclif's own help flag (with any additionalHelpFlags from
  // package.json); flags with a helpGroup follow under their group's heading.
  lines.push('.SH OPTIONS')
  const groups = new Map<string, Array<[string, Flag]>>([['', []]])
  for (const entry of info.flags) {
    const group = entry[1].helpGroup ?? ''
    groups.set(group, [...(groups.get(group) ?? []), entry])
  }

  const helpFlags = [...new Set([...(config.pjson.oclif.additionalHelpFlags ?? []), '--help'])]
  for (const [group, flags] of [...groups].sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1))) {
    if (group !== '') lines.push(`.SS ${arg(`${group.toUpperCase()} OPTIONS`)}`)
    for (const [name, flag] of flags) lines.push(...(await flagEntry(name, flag, info)))
    if (group === '') lines.push('.TP', helpFlags.map((f) => bold(f)).join(', '), 'Show the help and exit.')
  }

  lines.push('.SH EXIT STATUS', ...exitStatus(info.id))
  lines.push('.SH ENVIRONMENT', ...environmentRule(info), ...environment(environmentOf([info], config)))
  const compat = compatibility(info)
  if (compat.length > 0) lines.push('.SH COMPATIBILITY', ...compat)

  if ((info.cmd.examples ?? []).length > 0) lines.push('.SH EXAMPLES', ...examples(info, config))

  const others = all.filter((o) => o !== info).map((o) => `${o.page}(1)`)
  lines.push('.SH SEE ALSO', seeAlso([`${config.bin}(1)`, ...others]))
  return lines.join('\n') + '\n'
}

function exitStatus(id: string): string[] {
  const {success, failure} = EXIT_STATUS[id] ?? EXIT_STATUS_DEFAULT
  return ['.TP', bold('0'), roffText(success), '.TP', bold('1'), roffText(failure), '.TP', bold('2'), 'A usage error: an unknown flag, a bad value, a missing argument.']
}

interface Variable {
  name: string
  /** Plain text. */
  text: string
}

const NO_COLOR: Variable = {
  name: 'NO_COLOR',
  text: 'When set (to anything), log lines and help are printed without colour. Colour is also off when the output is not a terminal.',
}

/** What a command reads besides its flags' variables and the clients' (CLIENT_ENV). */
const COMMAND_ENV: Record<string, Variable[]> = {
  serve: [
    {
      name: NATIVE_SEND_ENV,
    text: `How the server writes to subscribers. Unset, through the native sender where it was built (npm run build compiles it when there is a C compiler): many sockets a call, and on Linux all of a call's sends in one system call through an io_uring, else one send(2) each. Set to ${NATIVE_SEND_NO_RING}, one send(2) a socket (no io_uring). Set to ${NATIVE_SEND_OFF}, through Node's streams. Each costs more CPU a delivery than the one before and changes nothing else. The start-up line writer says which one is in use, and why when it is not the first.`,
    },
    {
      name: NATIVE_CORK_ENV,
      text: `How the server sends the answers of publishes pipelined on one connection. Unset, where the native module was built, the connection is corked (TCP_CORK) for the turn of the event loop in which its answers are written, and they leave together: fewer TCP segments, and the client woken once for them. Set to 0, each answer as Node writes it. A connection with one request at a time is never corked, nor a TLS one.`,
    },
  ],
  'test-sub': [
    {
      name: NATIVE_READ_ENV,
      text: `How test-sub reads its subscriptions. Unset, through the native reader where it was built (with the server's native sender): the sockets ready at once are read together, on Linux in one system call through an io_uring, and handed to JavaScript in one call; that takes about 40 % less CPU a message than a read a socket through Node. Set to ${NATIVE_READ_NO_RING}, the native reader with one recv(2) a socket. Set to ${NATIVE_READ_OFF}, each socket through Node. Each reads the same bytes; TLS subscriptions are always read through Node.`,
    },
  ],
}

/**
 * Every variable the commands read, by name: each flag's `env` (oclif reads
 * it: the flag given wins), the client commands' (those with --url)
 * variables, a command's own (COMMAND_ENV), and NO_COLOR.
 */
function environmentOf(infos: CommandInfo[], config: Config): Variable[] {
  const found = new Map<string, {text?: string; flags: string[]}>()
  const entry = (name: string) => found.get(name) ?? found.set(name, {flags: []}).get(name)!
  const several = infos.length > 1
  const clients = infos.filter((info) => info.flags.some(([name]) => name === 'url'))
  // On the overview page, which commands these are.
  const lead = several ? `For ${clients.map((info) => `${config.bin} ${info.name}`).join(', ')}: ` : ''
  for (const info of infos) {
    if (clients.includes(info)) for (const variable of CLIENT_ENV) entry(variable.name).text = lead + (several ? variable.text.replace(/^T/, 't') : variable.text)
    for (const variable of COMMAND_ENV[info.name] ?? []) entry(variable.name).text = several ? `For ${config.bin} ${info.name}: ${variable.text.replace(/^[A-Z]/, (first) => first.toLowerCase())}` : variable.text
    for (const [name, flag] of info.flags) if (flag.env) entry(flag.env).flags.push(several ? `${config.bin} ${info.name} --${name}` : `--${name}`)
  }

  // A variable may mean one thing to the client commands and another to a flag (serve --user and MSGBUS_USER): both are said.
  const flagText = (flags: string[]) => `The value of ${flags.join(', ')} when ${flags.length > 1 ? 'they are' : 'it is'} not given.`
  const variables = [...found].map(([name, {text, flags}]) => ({
    name,
    text: text === undefined ? flagText(flags) : flags.length === 0 ? text : `${text} Also: ${flagText(flags).replace(/^T/, 't')}`,
  }))
  return [...variables.sort((a, b) => (a.name < b.name ? -1 : 1)), NO_COLOR]
}

function environment(variables: Variable[]): string[] {
  return variables.flatMap(({name, text}) => ['.TP', bold(name), roffText(text)])
}

/** `--history-dir` → `MSGBUS_HISTORY_DIR`: the shared rule for options in the environment. */
const ruleName = (flag: string): string => `MSGBUS_${flag.toUpperCase().replace(/-/g, '_')}`

/**
 * When a command reads (nearly) every option from the environment by the
 * shared rule, the rule itself, before the list: one sentence says what
 * forty entries would.
 */
function environmentRule(info: CommandInfo): string[] {
  const byRule = info.flags.filter(([name, flag]) => flag.env === ruleName(name))
  if (byRule.length < 3 || byRule.length < info.flags.length / 2) return []
  const config = info.flags.find(([name]) => name === 'config')
  const order = config ? `the flag wins over its variable, and the variable over ${bold('--config')}'s file` : 'the flag wins over its variable'
  return [
    `Each option is also read from the environment, as ${bold('MSGBUS_')} and its long name in upper case with ${bold('_')} for ${bold('-')}`,
    `(${bold('--history-dir')} as ${bold('MSGBUS_HISTORY_DIR')}); ${order}.`,
  ]
}

function compatibility(info: CommandInfo): string[] {
  const compat = COMPAT_2007[info.id]
  if (!compat) return []
  const flags = compat.flags.map(({char, flag, value}) => `${bold(`-${char}`)}${value ? ` ${italic(value)}` : ''} (${bold(`--${flag}`)})`)
  return [
    `The flags of the 2007 ${bold(compat.tool)} keep their 2007 meaning here:`,
    `${flags.join(',\n')},`,
    `and ${bold('-h')} for the help.`,
    ...(compat.note ? ['.PP', roffText(compat.note)] : []),
  ]
}

// ---------------------------------------------------------------------------
// The overview page: the bus itself, then the commands

const BUS = String.raw`
.SS Channels
A bus URL is
\fB/msgbus/\fR\fIchannel\fR.
The channel is the rest of the path up to any
.BR ? ,
percent\-decoded as UTF\-8; it may contain slashes
(\fB/msgbus/sensors/kitchen\fR is the channel \fBsensors/kitchen\fR)
and is at most 255 bytes long.
The empty channel,
.BR /msgbus/ ,
is every channel: it can be subscribed to, not published to.
Any other path is served from the server's document root, if it has one.
.SS Publishing
.B POST /msgbus/\fIchannel\fP
with a
.B Content\-Type
and a body publishes the body, byte for byte, with its content type.
The reply is
.B 204 No Content
once the message has been handed to every matching subscriber, with the headers
.B Msgbus\-Id
(the id given to the message) and
.B Msgbus\-Subscribers
(how many subscriptions it was handed to).
A
.B multipart/form\-data
body (an HTML form, \fBcurl \-F\fR) publishes each part as one message, in order,
all or none of them.
A body over the server's size limit is refused with
.BR 413 ;
other errors are answered with a one\-line reason.
.SS Subscribing
.B GET /msgbus/\fIchannel\fP
opens a subscription that lasts until either side closes it: one endless
.B multipart/x\-mixed\-replace
response in which every message published to the channel arrives as one part,
with the headers
.BR Content\-Type ,
.BR Content\-Length ,
.B Content\-Location
(the channel's URL),
.B Message\-ID
and, when the publisher authenticated,
.BR From .
.B GET /msgbus/
subscribes to every channel at once.
.PP
Two query parameters filter a subscription.
Each is a comma\-separated list of wildcard patterns:
.B *
matches any run of characters,
.B ?
any one character, and a leading
.B !
excludes what the pattern matches, even when another pattern matches.
.TP
.BI ?type= patterns
The message's media type, without parameters, case\-insensitively
(\fB?type=text/*,image/*\fR).
.TP
.BI ?sender= patterns
The publisher's user name (\fB?sender=alice,b*\fR).
A message without a sender is matched as the empty name: \fB*\fR lets it through, \fBalice\fR or \fBb*\fR do not.
.PP
The clients of the 2007 msgbus (libevmsg, Python 2's urllib) read a body up to the delimiter that follows it,
so their streams carry none of RFC 2046's line end between a body and the next delimiter.
The server knows them by their
.BR User\-Agent ;
.B ?framing=2007
or
.B ?framing=rfc2046
chooses for any other client, and
.B msgbus serve \-\-framing
for every one.
.SS Authentication
The user name of HTTP Basic authentication becomes the sender of what is published
(the \fBFrom\fR header of its part).
A server started with a secret requires Basic authentication with that secret as the password
on every request, else it answers
.BR 401 .
`.trim()

const EXAMPLES = String.raw`
.PP
Start a server, then subscribe to the channel \fBchat\fR
(\fB\-N\fR stops curl from buffering the stream):
.PP
.RS 4
.EX
$ msgbus serve &
$ curl \-N http://localhost:8888/msgbus/chat
.EE
.RE
.PP
From another terminal, publish a message to it:
.PP
.RS 4
.EX
$ curl \-H 'Content\-Type: text/plain' \-\-data\-binary 'hello, world' \e
    http://localhost:8888/msgbus/chat
.EE
.RE
.PP
Publish as \fBalice\fR (the password is empty, or the server's secret):
.PP
.RS 4
.EX
$ curl \-u alice: \-H 'Content\-Type: text/plain' \-\-data\-binary @note.txt \e
    http://localhost:8888/msgbus/chat
.EE
.RE
.PP
Publish a form: each part becomes one message, with its own content type:
.PP
.RS 4
.EX
$ curl \-F 'caption=a cat' \-F 'photo=@cat.jpg;type=image/jpeg' \e
    http://localhost:8888/msgbus/pictures
.EE
.RE
.PP
Subscribe to every channel, only to text sent by \fBalice\fR or \fBbob\fR:
.PP
.RS 4
.EX
$ curl \-N 'http://localhost:8888/msgbus/?type=text/*&sender=alice,bob'
.EE
.RE
.PP
Serve HTTPS too, on port 4444, with a secret:
.PP
.RS 4
.EX
$ msgbus serve \-\-cert server.pem \-\-secret s3cret &
$ curl \-N \-k \-u me:s3cret https://localhost:4444/msgbus/chat
.EE
.RE
`.trim()

const COMPLETION = String.raw`
Commands and flags complete in bash, zsh and PowerShell:
.B msgbus autocomplete bash
(or
.BR zsh ,
.BR powershell )
says how to turn it on; for bash:
.PP
.RS 4
.EX
$ printf "$(msgbus autocomplete script bash)" >> ~/.bashrc; source ~/.bashrc
.EE
.RE
`.trim()

function overviewPage(infos: CommandInfo[], config: Config): string {
  const bin = config.bin
  const lines = header(bin.toUpperCase(), config.version, `${bin}.1`)
  lines.push('.SH NAME', `${roffCode(bin)} \\- ${roffText(nameDescription(config.pjson.description ?? 'a message bus'))}`)
  lines.push(
    '.SH SYNOPSIS',
    `.SY ${bin}`,
    italic('command'),
    `[${italic('options')}]`,
    `[${italic('arguments')}]`,
    '.YS',
    `.SY ${bin}`,
    italic('command'),
    bold('--help'),
    '.YS',
    `.SY ${bin}`,
    bold('--version'),
    '.YS',
  )
  lines.push(
    '.SH DESCRIPTION',
    `${bold(bin)} is a publish/subscribe message bus over plain HTTP and HTTPS.`,
    'Publishers POST messages to a channel;',
    'subscribers GET the channel and keep the response open,',
    'receiving every message as one part of an endless multipart response',
    'that curl, browsers and any HTTP client can read.',
    `The commands listed under`,
    '.B COMMANDS',
    `run the bus and work with it from the shell;`,
    `each prints its help with ${bold('--help')} and has its own page, listed under`,
    '.BR "SEE ALSO" .',
    BUS,
  )

  lines.push('.SH COMMANDS')
  for (const info of infos) {
    lines.push('.TP', bold(`${bin} ${info.name}`))
    lines.push(...roffParagraphs(info.summary ?? nameDescription(info.description ?? '')))
    lines.push(`See \\fB${roffCode(info.page)}\\fR(1).`)
  }

  lines.push('.SH EXIT STATUS', ...exitStatus(''))
  lines.push(
    '.PP',
    "The same for every command; each command's page says what success and failure mean for it.",
  )
  lines.push('.SH ENVIRONMENT', ...environment(environmentOf(infos, config)))
  lines.push('.SH "SHELL COMPLETION"', COMPLETION)
  lines.push('.SH EXAMPLES', EXAMPLES)
  lines.push('.SH SEE ALSO', seeAlso([...infos.map((i) => `${i.page}(1)`), 'curl(1)']))
  return lines.join('\n') + '\n'
}

// ---------------------------------------------------------------------------

/** Every page, file name → roff, from the project at `root`. */
export async function generatePages(root = ROOT): Promise<Map<string, string>> {
  const config = await loadConfig(root)
  const infos = await commandInfos(config)
  const pages = new Map<string, string>()
  pages.set(`${config.bin}.1`, overviewPage(infos, config))
  for (const info of infos) pages.set(`${info.page}.1`, await commandPage(info, infos, config))
  return pages
}

async function ownPages(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return []
  return (await readdir(dir)).filter((name) => OWN_PAGE.test(name)).sort()
}

const USAGE = 'usage: node --import tsx/esm scripts/man.ts [--check] [--dir DIR] [--readme FILE]\n'

async function main(argv: string[]): Promise<number> {
  let check = false
  let dir = join(ROOT, 'man')
  let readme = join(ROOT, 'README.md')
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--check') check = true
    else if (argv[i] === '--dir' && argv[i + 1] !== undefined) dir = resolve(argv[++i])
    else if (argv[i] === '--readme' && argv[i + 1] !== undefined) readme = resolve(argv[++i])
    else if (argv[i] === '--help' || argv[i] === '-h') {
      process.stdout.write(USAGE)
      return 0
    } else {
      process.stderr.write(`man.ts: unknown argument ${argv[i]}\n${USAGE}`)
      return 2
    }
  }

  const show = (name: string) => relative(process.cwd(), join(dir, name)) || name
  const pages = await generatePages(ROOT)
  const existing = await ownPages(dir)
  const stale: string[] = []
  const done: string[] = []
  for (const [name, text] of pages) {
    const current = existsSync(join(dir, name)) ? await readFile(join(dir, name), 'utf8') : undefined
    if (current === text) continue
    stale.push(`${show(name)} (${current === undefined ? 'missing' : 'differs from the command'})`)
    if (!check) {
      await mkdir(dir, {recursive: true})
      await writeFile(join(dir, name), text)
      done.push(`wrote ${show(name)}`)
    }
  }

  for (const name of existing.filter((n) => !pages.has(n))) {
    stale.push(`${show(name)} (no such command)`)
    if (!check) {
      await rm(join(dir, name))
      done.push(`removed ${show(name)} (no such command)`)
    }
  }

  const readmeText = await readFile(readme, 'utf8')
  const readmeNew = spliceSection(readmeText, serveOptionsSection())
  if (readmeNew !== readmeText) {
    const name = relative(process.cwd(), readme) || readme
    stale.push(`${name} (its serve options differ from the option table)`)
    if (!check) {
      await writeFile(readme, readmeNew)
      done.push(`wrote the serve options in ${name}`)
    }
  }

  if (check) {
    if (stale.length === 0) {
      process.stdout.write(`man pages and README up to date (${pages.size})\n`)
      return 0
    }

    process.stderr.write(`generated files out of step with their sources:\n${stale.map((s) => `  ${s}\n`).join('')}run \`npm run man\` to regenerate them\n`)
    return 1
  }

  if (stale.length === 0) process.stdout.write(`man pages and README up to date (${pages.size})\n`)
  else process.stdout.write(done.map((line) => `${line}\n`).join(''))
  return 0
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`man.ts: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
      process.exit(1)
    },
  )
}
