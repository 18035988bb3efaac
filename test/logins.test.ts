// Logins under attack (`--secret`, `--acl`): failed logins throttled per
// client address and per user name, a hash queue that stays fair, bursts
// logged once, and unknown user names that answer in a real user's time.
// Clients come from several loopback addresses (127.0.0.x), as the server
// counts them per address.
import assert from 'node:assert/strict'
import {scryptSync} from 'node:crypto'
import {writeFileSync} from 'node:fs'
import {Agent, request as httpRequest} from 'node:http'
import bcrypt from 'bcryptjs'
import type {BusServer, BusServerOptions, Logger} from '../src/lib/index.js'
import {HashQueue, HashQueueFull} from '../src/lib/server/access/hash-queue.js'
import {makeScryptHash} from '../src/lib/server/access/password-hash.js'
import {startBus, stopAll, tempFolder, until, type Reply} from './support/harness.js'

const inTemp = tempFolder('msgbus-logins-')
let files = 0
function aclFile(text: string): string {
  const path = inTemp(`acl-${++files}.txt`)
  writeFileSync(path, text)
  return path
}

/** A publish with Basic credentials (or none) from a given loopback address. */
function login(server: BusServer, from: string, user?: string, password?: string, agent: Agent | false = false): Promise<Reply> {
  const headers: Record<string, string> = {'Content-Type': 'text/plain'}
  if (user !== undefined) headers.Authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${server.url()}/msgbus/chat`, {method: 'POST', localAddress: from, agent, headers}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks)}))
    })
    req.on('error', reject)
    req.end('x')
  })
}

async function timed<T>(work: () => Promise<T>): Promise<{ms: number; result: T}> {
  const started = performance.now()
  const result = await work()
  return {ms: performance.now() - started, result}
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** A logger that keeps its warnings. */
function recorder(): Logger & {warnings: string[]} {
  const warnings: string[] = []
  return {level: 0, warnings, log() {}, warn: (event, detail) => warnings.push(`${event} ${detail}`)}
}

function count(statuses: number[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1
  return counts
}

/** A 429 from the login limits: Retry-After in whole seconds, a one-line reason. */
function assertThrottled(reply: Reply, reason: RegExp, maxSeconds: number, what: string): void {
  const body = reply.body.toString()
  assert.equal(reply.status, 429, `${what}: ${reply.status} ${body}`)
  assert.match(body, reason, what)
  assert.match(body, /: try again in \d+ s\n$/, what)
  const retry = Number(reply.headers['retry-after'])
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= maxSeconds, `${what}: Retry-After ${reply.headers['retry-after']}`)
}

/** Hashes computed so far, by kind. */
const hashes = (server: BusServer): Record<string, number> => ({...server.counters().logins.hashes})
const total = (byKind: Record<string, number>) => Object.values(byKind).reduce((sum, n) => sum + n, 0)

describe('logins under attack', function () {
  this.timeout(60000)
  afterEach(stopAll)

  it('--acl: 200 wrong passwords from one address hold up a first login from another by a hash or two, not 200 @slow', async () => {
    const acl = aclFile(`alice ${await makeScryptHash('alice pw')} * *\nbob ${await makeScryptHash('bob pw')} * *\n`)
    const logger = recorder()
    const server = await startBus({acl, logger})
    // One hash's time, idle, and a login that is then cached.
    const hash = await timed(() => login(server, '127.0.0.5', 'bob', 'bob pw'))
    assert.equal(hash.result.status, 204)

    let answered = 0
    const flood = Array.from({length: 200}, (_, i) =>
      login(server, '127.0.0.1', 'alice', `wrong ${i}`).then((reply) => {
        answered++
        return reply
      }),
    )
    // Until the server has read the flood (it answers most of it at once now; before, it queued all 200): at most 3 s.
    await until(() => answered >= 190, 'most of the flood answered', 3000).catch(() => undefined)
    const bound = 20 * hash.ms
    const first = await timed(() =>
      Promise.race([
        login(server, '127.0.0.2', 'alice', 'alice pw'),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${bound.toFixed(0)} ms (one hash ${hash.ms.toFixed(0)} ms)`)), bound).unref()),
      ]),
    )
    const cached = await timed(() => login(server, '127.0.0.5', 'bob', 'bob pw'))
    const counts = count((await Promise.all(flood)).map((reply) => reply.status))
    console.log(`      (one hash idle ${hash.ms.toFixed(0)} ms; first login during the flood ${first.ms.toFixed(0)} ms; cached ${cached.ms.toFixed(1)} ms; flood ${JSON.stringify(counts)})`)
    assert.equal(first.result.status, 204)
    assert.equal(cached.result.status, 204)
    assert.ok(cached.ms < 10 * hash.ms, `a cached login took ${cached.ms.toFixed(0)} ms`)
    assert.deepEqual(Object.keys(counts).sort(), ['401', '429'])
    // At most the address's budget (10) and what was in the queue when it ran out (4) were checked.
    assert.ok(counts[401] <= 14, `${counts[401]} guesses checked`)
    // Most of the flood found the address's share of the queue taken: logged once.
    const full = logger.warnings.filter((line) => line.includes('being checked already'))
    assert.deepEqual(full, ['login 4 logins from 127.0.0.1 are being checked already; more at once get 429'])
  })

  it('--secret: past 10 failed logins an address gets 429 unchecked, even with the secret; others log in; one warn line @slow', async () => {
    const logger = recorder()
    const server = await startBus({secret: 's3cret', logger})
    const agent = new Agent({keepAlive: true, maxSockets: 8})
    const statuses: number[] = []
    const window = 1000
    const end = performance.now() + window
    let guess = 0
    await Promise.all(
      Array.from({length: 8}, async () => {
        while (performance.now() < end) statuses.push((await login(server, '127.0.0.1', 'mallory', `guess ${guess++}`, agent)).status)
      }),
    )
    agent.destroy()
    const counts = count(statuses)
    console.log(`      (guesses checked in ${window} ms from one address: ${counts[401] ?? 0} of ${statuses.length}; the rest ${JSON.stringify(counts)})`)
    assert.ok(counts[401] >= 10 && counts[401] <= 11, `${counts[401]} guesses checked`)
    assert.equal(counts[401] + counts[429], statuses.length)

    const right = await login(server, '127.0.0.1', 'mallory', 's3cret')
    assertThrottled(right, /^too many failed logins from 127\.0\.0\.1: /, 6, 'the secret from the throttled address')
    assert.equal((await login(server, '127.0.0.1')).status, 401, 'a request without credentials is not throttled')
    assert.equal((await login(server, '127.0.0.2', 'alice', 's3cret')).status, 204, 'another address')
    assert.equal(server.counters().published, 1)

    const lines = logger.warnings.filter((line) => line.includes('127.0.0.1'))
    assert.equal(lines.length, 1, lines.join('\n'))
    assert.match(lines[0], /^login 127\.0\.0\.1: 10 failed logins in [\d.]+ s; throttled: 429 for (6\.0|5\.\d) s, then one try every 6\.0 s/)

    // --max-login-failures 0: no limit.
    const open = await startBus({secret: 's3cret', maxLoginFailures: 0})
    for (let i = 0; i < 20; i++) assert.equal((await login(open, '127.0.0.1', 'm', `guess ${i}`)).status, 401)
    assert.equal((await login(open, '127.0.0.1', 'm', 's3cret')).status, 204)
  })

  it('--acl: a user name past its budget from all addresses gets 429 unhashed, except a cached login from a client it used without failures', async () => {
    const logger = recorder()
    const fast = (password: string) => bcrypt.hashSync(password, 4)
    const acl = aclFile(`alice ${fast('alice pw')} * *\nbob ${fast('bob pw')} * *\n`)
    // 2 failures per address, 20 per user name.
    const options: BusServerOptions = {acl, maxLoginFailures: 2, logger}
    const server = await startBus(options)
    assert.equal((await login(server, '127.0.0.2', 'alice', 'alice pw')).status, 204, 'the publisher logged in all along')
    assert.equal((await login(server, '127.0.0.3', 'alice', 'alice pw')).status, 204, 'alice from another place')

    const attack = async (user: string, first: number) => {
      const addresses = Array.from({length: 10}, (_, i) => `127.0.1.${first + i}`)
      const replies = await Promise.all(addresses.map(async (from) => [await login(server, from, user, 'guess 1'), await login(server, from, user, 'guess 2')]))
      assert.deepEqual(count(replies.flat().map((reply) => reply.status)), {401: 20}, `the attack on ${user}`)
      return performance.now()
    }

    const attackEnded = await attack('alice', 10)
    const before = hashes(server)
    assertThrottled(await login(server, '127.0.0.30', 'alice', 'alice pw'), /^too many failed logins for user "alice": /, 3, 'the right password, uncached here')
    assertThrottled(await login(server, '127.0.0.31', 'alice', 'guess 3'), /^too many failed logins for user "alice": /, 3, 'a guess')
    assert.equal((await login(server, '127.0.0.2', 'alice', 'alice pw')).status, 204, 'cached, from a client it used, without failures')
    // A failure makes 127.0.0.3 a client with a recent failure: its cached login no longer counts.
    assertThrottled(await login(server, '127.0.0.3', 'alice', 'guess 4'), /for user "alice"/, 3, 'a guess from a client alice used')
    assertThrottled(await login(server, '127.0.0.3', 'alice', 'alice pw'), /for user "alice"/, 3, 'then her password from there')
    assert.deepEqual(hashes(server), before, 'nothing hashed for a throttled user')
    const elapsed = performance.now() - attackEnded
    assert.equal((await login(server, '127.0.0.32', 'bob', 'bob pw')).status, 204, 'other users are not throttled')
    console.log(`      (checks done ${elapsed.toFixed(0)} ms after the attack; alice's throttle lasts 3 s)`)

    // An unknown name is throttled alike, so a 429 does not tell users apart.
    await attack('mallory', 50)
    assertThrottled(await login(server, '127.0.0.33', 'mallory', 'guess 3'), /^too many failed logins for user "mallory": /, 3, 'an unknown user')

    const lines = logger.warnings.filter((line) => /user "/.test(line))
    assert.equal(lines.length, 2, lines.join('\n'))
    assert.match(lines[0], /^login user "alice": 20 failed logins in [\d.]+ s from all clients; throttled: 429 for [23]\.\d s, then one try every 3\.0 s/)
    assert.match(lines[1], /^login unknown user "mallory": 20 failed logins/)
    assert.equal(logger.warnings.filter((line) => /^login 127\.0\.1\.\d+: 2 failed logins/.test(line)).length, 10, 'one line per address (the log budget)')
  })

  describe('unknown user names take the time of a real user of some kind', () => {
    // Fixed salts: the ACL's text, and so each unknown name's decoy, is the same on every run.
    const scrypt16 = (password: string) => {
      const salt = Buffer.from('msgbus test salt')
      const hash = scryptSync(password, salt, 32, {N: 2 ** 16, r: 8, p: 1, maxmem: 128 * 1024 * 1024})
      return `$scrypt$ln=16,r=8,p=1$${salt.toString('base64').replace(/=+$/, '')}$${hash.toString('base64').replace(/=+$/, '')}`
    }

    const bcryptSalted = (password: string, cost: number, salt: string) => bcrypt.hashSync(password, `$2b$${String(cost).padStart(2, '0')}$${salt}`)
    const SCRYPT = 'scrypt ln=16,r=8,p=1,keylen=32'
    const BCRYPT = 'bcrypt cost=4'

    /** The kind of hash one failed login computed, and its time. */
    async function attempt(server: BusServer, user: string): Promise<{kind: string; ms: number}> {
      const before = hashes(server)
      const {ms, result} = await timed(() => login(server, '127.0.0.1', user, 'not the password'))
      assert.equal(result.status, 401)
      const after = hashes(server)
      const kinds = Object.keys(after).filter((kind) => after[kind] !== before[kind])
      assert.equal(kinds.length, 1, `${user}: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`)
      assert.equal(total(after) - total(before), 1)
      return {kind: kinds[0], ms}
    }

    it('with a slow scrypt user and a fast bcrypt user, each unknown name is one of the two, always the same, and both occur @slow', async () => {
      const acl = aclFile(`alice ${scrypt16('alice pw')} * *\nbob ${bcryptSalted('bob pw', 4, 'abcdefghijklmnopqrstuu')} * *\n`)
      const options: BusServerOptions = {acl, maxLoginFailures: 0}
      let server = await startBus(options)
      const slow: number[] = []
      const quick: number[] = []
      for (let i = 0; i < 3; i++) {
        const alice = await attempt(server, 'alice')
        const bob = await attempt(server, 'bob')
        assert.deepEqual([alice.kind, bob.kind], [SCRYPT, BCRYPT])
        slow.push(alice.ms)
        quick.push(bob.ms)
      }

      // Classified by time at the geometric mean of the two: a wide margin either side.
      const threshold = Math.sqrt(median(slow) * median(quick))
      console.log(`      (alice, scrypt ln=16: ${median(slow).toFixed(0)} ms; bob, bcrypt 4: ${median(quick).toFixed(1)} ms; threshold ${threshold.toFixed(0)} ms)`)
      assert.ok(median(slow) > 8 * median(quick), 'the two kinds take clearly different times')

      const names = Array.from({length: 10}, (_, i) => `user${i}`)
      const first = new Map<string, string>()
      const report: string[] = []
      for (const round of [1, 2]) {
        // The second round on a restarted server: the choice is the same across restarts.
        if (round === 2) {
          await stopAll()
          server = await startBus(options)
        }

        for (const name of names) {
          const {kind, ms} = await attempt(server, name)
          assert.ok(kind === SCRYPT || kind === BCRYPT, `${name} verified as ${kind}`)
          assert.equal(kind === SCRYPT, ms > threshold, `${name}: ${kind} in ${ms.toFixed(1)} ms`)
          if (round === 1) first.set(name, kind)
          else assert.equal(kind, first.get(name), `${name} the same way every time`)
          report.push(`${name} ${kind.split(' ')[0]} ${ms.toFixed(0)}`)
        }
      }

      console.log(`      (${report.slice(0, names.length).join(', ')})`)
      const kinds = new Set(first.values())
      assert.deepEqual([...kinds].sort(), [BCRYPT, SCRYPT], 'both kinds occur')
    })

    it('the kinds are weighted by how many users have each', async () => {
      const users = [
        ['u1', 5, 'aaaaaaaaaaaaaaaaaaaaaa'],
        ['u2', 5, 'bbbbbbbbbbbbbbbbbbbbbu'],
        ['u3', 5, 'cccccccccccccccccccccu'],
        ['u4', 4, 'dddddddddddddddddddddu'],
      ] as const
      const acl = aclFile(users.map(([user, cost, salt]) => `${user} ${bcryptSalted(user, cost, salt)} * *\n`).join(''))
      const server = await startBus({acl, maxLoginFailures: 0})
      const counts: Record<string, number> = {}
      const names = 60
      for (let i = 0; i < names; i++) {
        const {kind} = await attempt(server, `name${i}`)
        counts[kind] = (counts[kind] ?? 0) + 1
      }

      console.log(`      (${names} unknown names: ${JSON.stringify(counts)}; 3 users have cost 5, 1 has cost 4)`)
      assert.deepEqual(Object.keys(counts).sort(), ['bcrypt cost=4', 'bcrypt cost=5'])
      const share = counts['bcrypt cost=5'] / names
      assert.ok(share > 0.55 && share < 0.92, `cost 5 for ${(share * 100).toFixed(0)}% of the names`)
    })
  })

  describe('the hash queue', () => {
    // Whole queues cannot be made over sockets in a test's time (256 hashes waiting);
    // here the queue is driven directly, with work that finishes when told to.
    function gate() {
      const waiting: Array<() => void> = []
      return {
        work: (label: string, log: string[]) => () =>
          new Promise<string>((resolve) => {
            log.push(label)
            waiting.push(() => resolve(label))
          }),
        release: () => waiting.shift()?.(),
      }
    }

    it('serves the client served longest ago first, and refuses past a client\'s share and past the whole queue\'s', async () => {
      // Two at once, three per client, four waiting.
      const queue = new HashQueue(2, 3, 4)
      const started: string[] = []
      const {work, release} = gate()
      const results: Array<Promise<string>> = []
      for (const label of ['a1', 'a2', 'a3']) results.push(queue.run('a', work(label, started)))
      await assert.rejects(queue.run('a', work('a4', started)), (error: HashQueueFull) => error.scope === 'client' && error.retryAfter >= 1)
      for (const [client, label] of [['b', 'b1'], ['c', 'c1'], ['b', 'b2']]) results.push(queue.run(client, work(label, started)))
      // a1 and a2 run; a3, b1, c1, b2 wait: the queue is full.
      assert.equal(queue.length, 4)
      await assert.rejects(queue.run('d', work('d1', started)), (error: HashQueueFull) => error.scope === 'all')
      for (let i = 0; i < 6; i++) {
        release()
        await new Promise((resolve) => setImmediate(resolve))
      }

      // The newcomers b and c before a's third; then b's second, b being served after a.
      assert.deepEqual(started, ['a1', 'a2', 'b1', 'c1', 'a3', 'b2'])
      assert.deepEqual(await Promise.all(results), ['a1', 'a2', 'a3', 'b1', 'c1', 'b2'])
    })
  })
})
