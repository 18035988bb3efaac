// The man pages in man/ are generated from the commands' oclif metadata by
// scripts/man.ts; these tests fail when a command's help and its page diverge,
// or README's table of serve options and the option table it comes from, and
// check that the pages are well-formed roff.
import assert from 'node:assert/strict'
import {spawnSync, type SpawnSyncReturns} from 'node:child_process'
import {mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import Dump from '../src/commands/dump.js'
import Send from '../src/commands/send.js'
import Serve from '../src/commands/serve.js'
import TestPub from '../src/commands/test-pub.js'
import TestSub from '../src/commands/test-sub.js'
import {COMPAT_2007} from '../scripts/man-notes.js'
import {roffCode, roffParagraphs, roffText} from '../scripts/man.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const MAN = join(ROOT, 'man')

function script(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['--import', 'tsx/esm', 'scripts/man.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  })
}

function has(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], {stdio: 'ignore'}).status === 0
}

/** The page as text, through man(1) or groff(1), with every warning on; undefined when neither is installed. */
function render(page: string): {text: string; warnings: string; status: number | null} | undefined {
  const env = {...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat'}
  let run: SpawnSyncReturns<string>
  if (has('man')) run = spawnSync('man', ['--warnings=w', '-l', page], {encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe']})
  else if (has('groff')) run = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-rLL=80n', '-P-cbu', page], {encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe']})
  else return undefined
  // Hyphens and minus signs may come out as U+2010/U+2212 depending on the groff set-up.
  return {text: run.stdout.replace(/[\u2010\u2212]/g, '-'), warnings: run.stderr, status: run.status}
}

const serveFlags = Object.entries(Serve.flags).filter(([, flag]) => !flag.hidden)
const COMMANDS = {dump: Dump, send: Send, serve: Serve, 'test-pub': TestPub, 'test-sub': TestSub}

/** A section of a page's roff, from its .SH to the next. */
function section(roff: string, name: string): string {
  const start = roff.search(new RegExp(`^\\.SH "?${name}"?$`, 'm'))
  if (start < 0) return ''
  const next = roff.slice(start + 1).search(/^\.SH /m)
  return next < 0 ? roff.slice(start) : roff.slice(start, start + 1 + next)
}

/** The variables a page's ENVIRONMENT section lists. */
function variablesOf(roff: string): string[] {
  return [...section(roff, 'ENVIRONMENT').matchAll(/^\.TP\n\\fB([A-Z_\\-]+)\\fR$/gm)].map((match) => match[1].replace(/\\-/g, '-'))
}

describe('man pages', function () {
  // Each check runs scripts/man.ts through tsx, 3 to 5 s apiece on a busy machine.
  this.timeout(60_000)
  it('man/ is what `npm run man` generates from the commands (else: run npm run man) @slow', () => {
    const run = script('--check')
    assert.equal(run.status, 0, `${run.stderr}${run.stdout}`)
  })

  it('--check exits 1 naming each stale, missing or orphaned page @slow', () => {
    const dir = mkdtempSync(join(tmpdir(), 'msgbus-man-'))
    try {
      const write = script('--dir', dir)
      assert.equal(write.status, 0, write.stderr)
      assert.equal(script('--check', '--dir', dir).status, 0)

      writeFileSync(join(dir, 'msgbus-serve.1'), readFileSync(join(dir, 'msgbus-serve.1'), 'utf8').replace('HTTP port.', 'The port.'))
      rmSync(join(dir, 'msgbus.1'))
      writeFileSync(join(dir, 'msgbus-gone.1'), '.TH MSGBUS-GONE 1\n')
      writeFileSync(join(dir, 'README'), 'not a page\n')

      const check = script('--check', '--dir', dir)
      assert.equal(check.status, 1)
      assert.match(check.stderr, /msgbus-serve\.1 \(differs/)
      assert.match(check.stderr, /msgbus\.1 \(missing\)/)
      assert.match(check.stderr, /msgbus-gone\.1 \(no such command\)/)
      assert.doesNotMatch(check.stderr, /README/)

      // Writing again repairs all three, and leaves other files alone.
      assert.equal(script('--dir', dir).status, 0)
      assert.equal(script('--check', '--dir', dir).status, 0)
      assert.deepEqual(readdirSync(dir).sort(), readdirSync(MAN).filter((n) => n.endsWith('.1')).concat('README').sort())
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it("README.md's serve options are written from the option table, and --check names a stale copy", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    for (const [name, flag] of serveFlags) {
      assert.match(readme, new RegExp(`^\\| \`${flag.char ? `-${flag.char}, ` : ''}--${name}[ \`]`, 'm'), `--${name} has no row`)
    }

    const dir = mkdtempSync(join(tmpdir(), 'msgbus-readme-'))
    const copy = join(dir, 'README.md')
    try {
      writeFileSync(copy, readme.replace('| 8888 | HTTP port', '| 8080 | HTTP port'))
      const check = script('--check', '--readme', copy)
      assert.equal(check.status, 1)
      assert.match(check.stderr, /README\.md \(its serve options differ from the option table\)/)
      assert.doesNotMatch(check.stderr, /msgbus.*\.1/, 'the pages are not stale')

      assert.equal(script('--readme', copy).status, 0)
      assert.equal(readFileSync(copy, 'utf8'), readme)
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })

  it('msgbus-serve.1 has its title and every serve flag', () => {
    const roff = readFileSync(join(MAN, 'msgbus-serve.1'), 'utf8')
    assert.match(roff, /^\.TH MSGBUS-SERVE 1 /m)
    for (const [name, flag] of serveFlags) {
      assert.ok(roff.includes(roffCode(`--${name}`)), `--${name} is missing`)
      if (flag.char) assert.ok(roff.includes(`${roffCode(`-${flag.char}`)}\\fR, \\fB${roffCode(`--${name}`)}`), `-${flag.char} is missing`)
    }
  })

  it('msgbus.1 lists every command and describes the bus', () => {
    const roff = readFileSync(join(MAN, 'msgbus.1'), 'utf8')
    assert.match(roff, /^\.TH MSGBUS 1 /m)
    for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'ENVIRONMENT', 'EXAMPLES', 'SEE ALSO']) {
      assert.match(roff, new RegExp(`^\\.SH "?${section}"?$`, 'm'), section)
    }

    const pages = readdirSync(MAN).filter((name) => /^msgbus-.+\.1$/.test(name))
    assert.ok(pages.includes('msgbus-serve.1'))
    for (const page of pages) assert.ok(roff.includes(`\\fB${roffCode(page.replace(/\.1$/, ''))}\\fR(1)`), `${page} is not listed`)
    for (const word of ['MSGBUS_SECRET', 'NO_COLOR', 'multipart/x\\-mixed\\-replace', '?type=', '?sender=', 'curl']) {
      assert.ok(roff.includes(word), word)
    }
  })

  it('every page renders without a warning @slow', function () {
    const first = render(join(MAN, 'msgbus-serve.1'))
    if (first === undefined) this.skip()
    for (const page of readdirSync(MAN).filter((name) => name.endsWith('.1'))) {
      const out = render(join(MAN, page))!
      assert.equal(out.status, 0, `${page}: ${out.warnings}`)
      assert.equal(out.warnings, '', `${page}: ${out.warnings}`)
      const title = page.replace(/\.1$/, '').toUpperCase()
      assert.ok(out.text.includes(`${title}(1)`), `${page}: no ${title}(1) header`)
      for (const section of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'SEE ALSO']) assert.match(out.text, new RegExp(`^${section}$`, 'm'), `${page}: ${section}`)
    }
  })

  it('msgbus-serve.1 renders every serve flag', function () {
    const out = render(join(MAN, 'msgbus-serve.1'))
    if (out === undefined) this.skip()
    assert.match(out.text, /^NAME\n\s+msgbus-serve - run the message bus server$/m)
    for (const [name, flag] of serveFlags) {
      assert.ok(out.text.includes(flag.char ? `-${flag.char}, --${name}` : `--${name}`), `--${name} is not rendered`)
    }
  })

  it('every command page says what its exit statuses mean: 0, 1 and 2 (usage)', () => {
    for (const command of Object.keys(COMMANDS)) {
      const exit = section(readFileSync(join(MAN, `msgbus-${command}.1`), 'utf8'), 'EXIT STATUS')
      assert.match(exit, /^\.TP\n\\fB0\\fR\n.+\n\.TP\n\\fB1\\fR\n.+\n\.TP\n\\fB2\\fR\nA usage error/m, `msgbus-${command}.1: ${exit}`)
    }
  })

  it('ENVIRONMENT lists every variable a command reads, and msgbus.1 all of them', () => {
    const all = new Set<string>()
    for (const [command, cmd] of Object.entries(COMMANDS)) {
      const listed = variablesOf(readFileSync(join(MAN, `msgbus-${command}.1`), 'utf8'))
      const flags = Object.values({...cmd.baseFlags, ...cmd.flags}) as Array<{env?: string}>
      const expected = flags.map((flag) => flag.env).filter((env): env is string => env !== undefined)
      if ('url' in cmd.flags) expected.push('MSGBUS_URL', 'MSGBUS_USER', 'MSGBUS_PASSWORD')
      for (const variable of [...expected, 'NO_COLOR']) assert.ok(listed.includes(variable), `msgbus-${command}.1 does not list ${variable}: ${listed.join(' ')}`)
      for (const variable of listed) all.add(variable)
    }

    const overview = variablesOf(readFileSync(join(MAN, 'msgbus.1'), 'utf8'))
    assert.deepEqual([...all].sort(), [...overview].sort())
  })

  it('defaults are in the units a user types: 8MiB, 1h, not 8388608 or 3600', () => {
    const roff = readFileSync(join(MAN, 'msgbus-serve.1'), 'utf8')
    assert.match(roff, /^\\fB\\-\\-max\\-message\\-size\\fR=\\fIsize\\fR\n.*\n\.br\nDefault: \\fB8MiB\\fR\./m)
    assert.match(roff, /^\\fB\\-\\-history\\-age\\fR=\\fIduration\\fR\n.*\n\.br\nDefault: \\fB1h\\fR\./m)
    for (const page of readdirSync(MAN).filter((name) => name.endsWith('.1'))) {
      // Bytes in KiB, MiB or GiB (counts such as --max-subscribers' 10000 stay numbers).
      for (const [, bytes] of readFileSync(join(MAN, page), 'utf8').matchAll(/Default: \\fB(\d+)\\fR/g)) assert.ok(Number(bytes) < 1024 || Number(bytes) % 1024 !== 0, `${page}: ${bytes}`)
    }
  })

  it("the 2007 tools' flags keep their letters and meaning, and each page says which they are", () => {
    for (const [command, {tool, flags}] of Object.entries(COMPAT_2007)) {
      const cmd = COMMANDS[command as keyof typeof COMMANDS]
      assert.ok(cmd, `no command ${command}`)
      const roff = section(readFileSync(join(MAN, `msgbus-${command}.1`), 'utf8'), 'COMPATIBILITY')
      assert.ok(roff.includes(`2007 \\fB${roffCode(tool)}\\fR`), `msgbus-${command}.1 names ${tool}: ${roff}`)
      for (const {char, flag} of flags) {
        const owner = Object.entries(cmd.flags).find(([, f]) => f.char === char)
        assert.equal(owner?.[0], flag, `${command} -${char} is --${owner?.[0] ?? '(none)'}, not --${flag} as in 2007`)
        assert.ok(roff.includes(`\\fB${roffCode(`-${char}`)}\\fR`), `msgbus-${command}.1 does not name -${char}`)
      }
    }
  })

  it("package.json's man lists every page, for npm to install", () => {
    const {man} = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {man: string[]}
    assert.deepEqual([...man].sort(), readdirSync(MAN).filter((name) => name.endsWith('.1')).sort().map((name) => `./man/${name}`))
  })

  describe('roff escaping', () => {
    it('escapes backslashes and marks option hyphens as minus signs', () => {
      assert.equal(roffText('C:\\dir'), 'C:\\edir')
      assert.equal(roffText('see --max-pending or -v (-vvv), not x-mixed-replace'), 'see \\-\\-max\\-pending or \\-v (\\-vvv), not x-mixed-replace')
      assert.equal(roffCode('msgbus serve --slow-policy drop'), 'msgbus serve \\-\\-slow\\-policy drop')
    })

    it('keeps lines from starting with a control character', () => {
      assert.deepEqual(roffParagraphs(".profile is read\n'quoted' too"), ["\\&.profile is read", "\\&'quoted' too"])
    })

    it('writes non-ASCII characters and controls portably', () => {
      assert.equal(roffText('caf\u00e9 \u2014 \u{1F600}\tend'), 'caf\\[u00E9] \\[u2014] \\[u1F600] end')
    })

    it('keeps indented paragraphs as they are', () => {
      assert.deepEqual(roffParagraphs('Run it:\n\n  $ msgbus serve -v\n    .x'), ['Run it:', '.PP', '.RS 4', '.nf', '$ msgbus serve \\-v', '  .x', '.fi', '.RE'])
    })
  })
})
