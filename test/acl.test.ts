// `serve --acl FILE`: users with password hashes, per-user publish and
// subscribe patterns, anonymous access, reload on SIGHUP, and the
// verification cache. Real servers over real sockets, curl, and the CLI.
import assert from 'node:assert/strict'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import bcrypt from 'bcryptjs'
import type {BusServer} from '../src/lib/index.js'
import {msgbus, ServeProcess, Subscription, curl, publish, request, startBus, stopAll} from './support/harness.js'

const dir = mkdtempSync(join(tmpdir(), 'msgbus-acl-'))
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
const auth = (user: string, password: string) => ({Authorization: basic(user, password)})
const serve = (args: string[], options: {input?: string; env?: NodeJS.ProcessEnv} = {}) => msgbus(['serve', ...args], {...options, timeoutMs: 15000})

let file = 0
function aclFile(text: string): string {
  const path = join(dir, `acl-${++file}.txt`)
  writeFileSync(path, text)
  return path
}

/** A scrypt hash made the way a user makes one: through the CLI. */
async function hashWithCli(password: string): Promise<string> {
  const result = await serve(['--hash-password'], {input: `${password}\n`})
  assert.equal(result.code, 0, result.stderr)
  return result.stdout.trim()
}

async function time<T>(work: () => Promise<T>): Promise<{ms: number; result: T}> {
  const started = performance.now()
  const result = await work()
  return {ms: performance.now() - started, result}
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

describe('serve --acl', function () {
  this.timeout(30000)
  let aliceHash: string
  let bobHash: string
  let carolHash: string
  let acl: string

  before(async () => {
    aliceHash = await hashWithCli('alice pw')
    bobHash = bcrypt.hashSync('bob pw', 8)
    // htpasswd -B writes $2y$: the same algorithm.
    carolHash = bcrypt.hashSync('carol pw', 8).replace(/^\$2b\$/, '$2y$')
    acl = aclFile(`# msgbus ACL for the tests
# user   password-hash   publish        subscribe
alice    ${aliceHash}    chat,alerts/*  *
bob\t${bobHash}\t-\tchat,news/*       # a tab-separated line, with a comment
carol    ${carolHash}    *,!alerts/*    -
*        -               -              public/*
`)
  })

  afterEach(stopAll)

  it('--hash-password prints one scrypt hash line for the password on stdin, a new salt each time @slow', async () => {
    assert.match(aliceHash, /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
    const again = await hashWithCli('alice pw')
    assert.notEqual(again, aliceHash)
    const empty = await serve(['--hash-password'], {input: ''})
    assert.equal(empty.code, 1)
    assert.match(empty.stderr, /^msgbus serve: no password on standard input/)
  })

  it('lets each user publish to the channels of their publish list only, and says who may not do what where @slow', async () => {
    const server = await startBus({acl})
    const sub = await Subscription.open(server, '/msgbus/', `Authorization: ${basic('alice', 'alice pw')}\r\n`)
    const url = `${server.url()}/msgbus`
    const post = (user: string, password: string, channel: string) =>
      curl(['-i', '-u', `${user}:${password}`, '-H', 'Content-Type: text/plain', '-d', `${user} to ${channel}`, `${url}/${channel}`])
    const status = (reply: {stdout: string}) => Number(/^HTTP\/1\.1 (\d+)/.exec(reply.stdout)?.[1])

    assert.equal(status(await post('alice', 'alice pw', 'chat')), 204)
    assert.equal(status(await post('alice', 'alice pw', 'alerts/fire')), 204)
    assert.equal(status(await post('carol', 'carol pw', 'news/today')), 204)
    const refused = await post('alice', 'alice pw', 'news')
    assert.equal(status(refused), 403)
    assert.match(refused.stdout, /\r\n\r\nalice may not publish to "news"\n$/)
    assert.equal(status(await post('bob', 'bob pw', 'chat')), 403, 'bob may publish nowhere (-)')
    assert.equal(status(await post('carol', 'carol pw', 'alerts/fire')), 403, 'carol: everything but alerts/*')
    assert.equal(status(await post('alice', 'alice pw', 'Chat')), 403, 'channel patterns are case-sensitive')

    // A marker after them: whatever the refused publishes had let through would have come before it.
    assert.equal((await publish(server, 'chat', 'marker', 'text/plain', auth('alice', 'alice pw'))).status, 204)
    assert.deepEqual(
      (await sub.before('marker')).map((p) => [p.headers['content-location'], p.headers.from, p.body.toString()]),
      [
        ['/msgbus/chat', 'alice', 'alice to chat'],
        ['/msgbus/alerts/fire', 'alice', 'alice to alerts/fire'],
        ['/msgbus/news/today', 'carol', 'carol to news/today'],
      ],
    )
    sub.close()
  })

  it('checks a form publish once for its channel', async () => {
    const server = await startBus({acl})
    const url = `${server.url()}/msgbus`
    const ok = await curl(['-i', '-u', 'alice:alice pw', '-F', 'a=one', '-F', 'b=two', `${url}/chat`])
    assert.match(ok.stdout, /^HTTP\/1\.1 204/)
    assert.match(ok.stdout, /Msgbus-Id: \d+-\d+, \d+-\d+/)
    const refused = await curl(['-i', '-u', 'alice:alice pw', '-F', 'a=one', '-F', 'b=two', `${url}/news`])
    assert.match(refused.stdout, /^HTTP\/1\.1 403/)
    assert.equal(server.counters().published, 2)
  })

  it('lets each user subscribe to the channels of their subscribe list only', async () => {
    const server = await startBus({acl})
    const bob = auth('bob', 'bob pw')
    const chat = await Subscription.open(server, '/msgbus/chat', `Authorization: ${bob.Authorization}\r\n`)
    const news = await Subscription.open(server, '/msgbus/news/today', `Authorization: ${bob.Authorization}\r\n`)
    const refused = await request(`${server.url()}/msgbus/alerts/fire`, {headers: bob})
    assert.equal(refused.status, 403)
    assert.equal(refused.body.toString(), 'bob may not subscribe to "alerts/fire"\n')
    assert.equal((await request(`${server.url()}/msgbus/chat`, {method: 'HEAD', headers: auth('carol', 'carol pw')})).status, 403)

    assert.equal((await publish(server, 'chat', 'hi', 'text/plain', auth('alice', 'alice pw'))).status, 204)
    assert.equal((await publish(server, 'news/today', 'extra', 'text/plain', auth('carol', 'carol pw'))).status, 204)
    assert.equal((await chat.waitParts(1))[0].body.toString(), 'hi')
    assert.equal((await news.waitParts(1))[0].body.toString(), 'extra')
    chat.close()
    news.close()
  })

  it('a subscription to every channel gets only the channels the user may subscribe to', async () => {
    const server = await startBus({acl})
    const bob = `Authorization: ${basic('bob', 'bob pw')}\r\n`
    const everything = await Subscription.open(server, '/msgbus/', bob)
    const filtered = await Subscription.open(server, '/msgbus/?sender=carol', bob)
    const alice = auth('alice', 'alice pw')
    const carol = auth('carol', 'carol pw')
    for (const [channel, who] of [
      ['alerts/fire', alice],
      ['chat', alice],
      ['secret', carol],
      ['news/today', carol],
      ['newsroom', carol],
    ] as const) {
      const reply = await publish(server, channel, `to ${channel}`, 'text/plain', who)
      assert.equal(reply.status, 204, channel)
      // Msgbus-Subscribers counts the subscriptions that got it.
      const expected = channel === 'chat' ? '1' : channel === 'news/today' ? '2' : '0'
      assert.equal(reply.headers['msgbus-subscribers'], expected, channel)
    }

    await everything.waitParts(2)
    await filtered.waitParts(1)
    assert.deepEqual(everything.parts().map((p) => p.body.toString()), ['to chat', 'to news/today'])
    assert.deepEqual(filtered.parts().map((p) => p.body.toString()), ['to news/today'])
    // carol may subscribe to nothing: not even every channel.
    const carolAll = await request(`${server.url()}/msgbus/`, {headers: carol})
    assert.equal(carolAll.status, 403)
    assert.equal(carolAll.body.toString(), 'carol may not subscribe to any channel\n')
    everything.close()
    filtered.close()
  })

  it('anonymous requests get what the * line allows, and 401 with a Basic challenge for the rest', async () => {
    const server = await startBus({acl})
    const url = `${server.url()}/msgbus`
    const sub = await Subscription.open(server, '/msgbus/public/news')
    const anonymousAll = await Subscription.open(server, '/msgbus/')
    for (const [method, channel] of [
      ['GET', 'chat'],
      ['POST', 'public/news'],
    ]) {
      const reply = await request(`${url}/${channel}`, {method, headers: {'Content-Type': 'text/plain'}, body: method === 'POST' ? 'x' : undefined})
      assert.equal(reply.status, 401, `${method} ${channel}`)
      assert.equal(reply.headers['www-authenticate'], 'Basic realm="msgbus"')
      assert.match(reply.body.toString(), /^anonymous users may not (subscribe|publish) to "[^"]+": authentication required\n$/)
    }

    await publish(server, 'public/news', 'for everyone', 'text/plain', auth('carol', 'carol pw'))
    await publish(server, 'news/today', 'for bob', 'text/plain', auth('carol', 'carol pw'))
    assert.equal((await sub.waitParts(1))[0].body.toString(), 'for everyone')
    await publish(server, 'public/news', 'marker', 'text/plain', auth('carol', 'carol pw'))
    assert.deepEqual((await anonymousAll.before('marker')).map((p) => [p.body.toString(), p.headers.from]), [['for everyone', 'carol']])
    sub.close()
    anonymousAll.close()

    // Without a * line, no request without credentials gets anywhere.
    const closed = await startBus({acl: aclFile(`alice ${aliceHash} * *\n`)})
    for (const path of ['/msgbus/chat', '/msgbus/', '/anything']) {
      const reply = await curl(['-i', `${closed.url()}${path}`])
      assert.match(reply.stdout, /^HTTP\/1\.1 401 /, path)
      assert.match(reply.stdout, /\r\nWWW-Authenticate: Basic realm="msgbus"\r\n/i)
      assert.match(reply.stdout, /\r\n\r\nauthentication required\n$/)
    }

    const post = await curl(['-i', '-H', 'Content-Type: text/plain', '-d', 'x', `${closed.url()}/msgbus/chat`])
    assert.match(post.stdout, /^HTTP\/1\.1 401 /)
    assert.equal(closed.counters().published, 0)
  })

  it('a wrong password gets 401 alike for known and unknown users, in about the same time @slow', async () => {
    // Ten failures from one address, then the right password: a budget above the default 10, so none is throttled.
    const server = await startBus({acl: aclFile(`alice ${aliceHash} * *\n`), maxLoginFailures: 20})
    const attempt = async (user: string, password: string) => {
      const {ms, result} = await time(() => publish(server, 'chat', 'x', 'text/plain', auth(user, password)))
      return {ms, status: result.status, challenge: result.headers['www-authenticate'], body: result.body.toString()}
    }

    const known: number[] = []
    const unknown: number[] = []
    for (let i = 0; i < 5; i++) {
      for (const [user, into] of [
        ['alice', known],
        ['mallory', unknown],
      ] as const) {
        const reply = await attempt(user, `guess ${i}`)
        assert.deepEqual([reply.status, reply.challenge, reply.body], [401, 'Basic realm="msgbus"', 'wrong user name or password\n'], user)
        into.push(reply.ms)
      }
    }

    const ratio = median(unknown) / median(known)
    assert.ok(ratio > 0.4 && ratio < 2.5, `unknown user ${median(unknown).toFixed(1)} ms, wrong password ${median(known).toFixed(1)} ms`)
    // The same password is not cached as a failure: the right one still works.
    assert.equal((await attempt('alice', 'alice pw')).status, 204)
    assert.equal(server.counters().published, 1)
  })

  it('pays for the hash once for many publishes with the same credentials @slow', async () => {
    const server = await startBus({acl: aclFile(`alice ${aliceHash} * *\n`)})
    // One hash time: wrong passwords are never cached, so each costs a full verification.
    const wrong: number[] = []
    for (let i = 0; i < 3; i++) wrong.push((await time(() => publish(server, 'c', 'x', 'text/plain', auth('alice', `no ${i}`)))).ms)
    const hashMs = median(wrong)
    const count = 200
    const {ms} = await time(async () => {
      for (let i = 0; i < count; i++) {
        const reply = await publish(server, 'c', `m${i}`, 'text/plain', auth('alice', 'alice pw'))
        assert.equal(reply.status, 204)
      }
    })
    assert.ok(ms < 50 * hashMs, `${count} publishes took ${ms.toFixed(0)} ms; one hash ${hashMs.toFixed(1)} ms`)
    // Other credentials are verified on their own: a wrong password after a right one is still refused.
    assert.equal((await publish(server, 'c', 'x', 'text/plain', auth('alice', 'alice pw '))).status, 401)
  })

  it('refuses a bad ACL at start-up: file, line and what is wrong @slow', async () => {
    const bad = aclFile(`# comment\nalice ${aliceHash} chat *\nbob $md5$abc - -\n`)
    const result = await serve(['--acl', bad, '--port', '0', '--address', '127.0.0.1'])
    assert.equal(result.code, 1)
    assert.equal(result.stderr, `msgbus serve: ${bad}:3: unknown hash scheme "md5" (use scrypt or bcrypt)\n`)

    const cases: Array<[string, RegExp]> = [
      [`alice ${aliceHash} chat\n`, /:1: expected 4 fields \(user, password hash, publish, subscribe\), found 3$/],
      [`\n* $2b$10$abc - -\n`, /:2: the anonymous entry "\*" takes no password/],
      [`alice - chat *\n`, /:1: user "alice" has no password hash \(make one with msgbus serve --hash-password\)$/],
      [`alice hunter2 chat *\n`, /:1: the password field is not a hash/],
      [`alice ${aliceHash} chat *\nalice ${aliceHash} - *\n`, /:2: user "alice" is already on line 1$/],
      [`alice ${aliceHash} chat,,x *\n`, /:1: empty pattern in the publish list "chat,,x"$/],
      [`alice ${aliceHash} - !secret\n`, /:1: the subscribe list "!secret" has only negated patterns/],
      [`alice $scrypt$ln=40,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA - *\n`, /:1: scrypt parameter ln=40 is out of range/],
      [`# nothing\n`, /: no users/],
    ]
    for (const [text, expected] of cases) {
      const path = aclFile(text)
      await assert.rejects(startBus({acl: path}), (error: Error) => {
        assert.ok(error.message.startsWith(path), error.message)
        assert.match(error.message, expected)
        assert.ok(!error.message.includes('hunter2'), 'a password in clear is not echoed')
        return true
      })
    }

    const missing = await serve(['--acl', join(dir, 'none.txt'), '--port', '0'])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /^msgbus serve: cannot read ACL \S+none\.txt: ENOENT\n$/)
  })

  it('--acl with --secret (or $MSGBUS_SECRET) is a usage error, and does not print the secret @slow', async () => {
    const both = await serve(['--acl', acl, '--secret', 'hush'])
    assert.equal(both.code, 2)
    assert.match(both.stderr, /^msgbus serve: --acl and --secret cannot be used together/)
    const fromEnv = await serve(['--acl', acl], {env: {MSGBUS_SECRET: 'hush'}})
    assert.equal(fromEnv.code, 2)
    assert.match(fromEnv.stderr, /--acl and \$MSGBUS_SECRET cannot be used together/)
    assert.ok(!`${both.stderr}${fromEnv.stderr}`.includes('hush'))
    await assert.rejects(startBus({acl, secret: 'hush'}), /acl and secret cannot be used together/)
  })

  it('re-reads the ACL on SIGHUP without dropping open subscriptions, and keeps the old one when the new is broken @slow', async () => {
    const path = aclFile(`alice ${aliceHash} chat *\nbob ${bobHash} - chat\n`)
    const serve = await ServeProcess.start(['--port', '0', '--address', '127.0.0.1', '--acl', path])
    try {
      // The acl line follows the listen line, maybe in a later read of the pipe.
      await serve.logged(new RegExp(`listen acl ${path} \\(2 users\\)`))
      const url = `http://127.0.0.1:${serve.port()}/msgbus`
      const sub = await Subscription.open({addresses: {http: {port: serve.port()}}} as unknown as BusServer, '/msgbus/', `Authorization: ${basic('bob', 'bob pw')}\r\n`)
      const send = (channel: string, body: string) =>
        request(`${url}/${channel}`, {method: 'POST', headers: {'Content-Type': 'text/plain', ...auth('alice', 'alice pw')}, body})
      assert.equal((await send('chat', 'one')).status, 204)
      assert.equal((await send('news', 'not yet')).status, 403)

      writeFileSync(path, `alice ${aliceHash} chat,news *\nbob ${bobHash} - chat,news\n* - - news\n`)
      const reloaded = (pattern: RegExp) => serve.logged(pattern)

      serve.child.kill('SIGHUP')
      await reloaded(new RegExp(`reload acl ${path} \\(2 users and anonymous access\\)\n`))
      assert.equal((await send('news', 'two')).status, 204)
      assert.equal((await request(`${url}/news`, {method: 'HEAD'})).status, 200, 'anonymous access came with the reload')
      assert.deepEqual((await sub.waitParts(2)).map((p) => p.body.toString()), ['one', 'two'])

      writeFileSync(path, `alice ${aliceHash} chat *\nbob $2b$99$nonsense - chat\n`)
      serve.child.kill('SIGHUP')
      await reloaded(new RegExp(`reload ${path}:2: a bcrypt hash is .*; keeping the previous ACL\n`))
      assert.equal((await send('news', 'three')).status, 204, 'the previous ACL is still in force')
      assert.deepEqual((await sub.waitParts(3)).map((p) => p.body.toString()), ['one', 'two', 'three'])
      assert.ok(!sub.client.closed)
      sub.close()
      assert.equal((await serve.stop()).code, 0)
    } finally {
      await serve.stop('SIGKILL')
    }
  })

  it('a reload that takes a channel away stops its messages on open subscriptions', async () => {
    const path = aclFile(`alice ${aliceHash} * *\nbob ${bobHash} - chat,news\n`)
    const server = await startBus({acl: path})
    const sub = await Subscription.open(server, '/msgbus/', `Authorization: ${basic('bob', 'bob pw')}\r\n`)
    const alice = auth('alice', 'alice pw')
    await publish(server, 'news', 'before', 'text/plain', alice)
    await sub.waitParts(1)
    writeFileSync(path, `alice ${aliceHash} * *\nbob ${bobHash} - chat\n`)
    assert.deepEqual(await server.reloadAcl(), {file: path, users: 2, description: '2 users'})
    assert.equal((await publish(server, 'news', 'after', 'text/plain', alice)).headers['msgbus-subscribers'], '0')
    await publish(server, 'chat', 'still', 'text/plain', alice)
    await sub.waitParts(2)
    assert.deepEqual(sub.parts().map((p) => p.body.toString()), ['before', 'still'])
    sub.close()
  })
})
