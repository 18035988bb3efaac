// Access policy parts alone: ACL files, CORS decisions, the publish rate.
import assert from 'node:assert/strict'
import {Acl, AclError} from '../../src/lib/server/access/acl.js'
import {CorsOptionError, CorsPolicy} from '../../src/lib/server/access/cors.js'
import {RateLimiter} from '../../src/lib/server/access/rate-limit.js'
import type {IncomingMessage} from 'node:http'

const HASH = '$2b$04$abcdefghijklmnopqrstuu5s2v8.HEVv9Ih8wXpKGoa9hyVUMUvK2'

describe('unit: ACL files', () => {
  it('reads users, anonymous access and their pattern lists', () => {
    const acl = Acl.parse(`# users\nalice ${HASH} chat,alerts/* *   # all\n\n* - - public/*,!public/secret\n`, 'acl')
    assert.equal(acl.describe(), '1 user and anonymous access')
    const alice = acl.entry('alice')!
    assert.equal(alice.mayPublish('alerts/fire'), true)
    assert.equal(alice.mayPublish('news'), false)
    assert.equal(alice.maySubscribe('anything'), true)
    const anyone = acl.anonymous!
    assert.equal(anyone.mayPublish('public/x'), false)
    assert.equal(anyone.maySubscribe('public/x'), true)
    assert.equal(anyone.maySubscribe('public/secret'), false)
    assert.equal(acl.entry('bob'), undefined)
  })

  const errors: Array<[string, string, RegExp]> = [
    ['three fields', `alice ${HASH} *`, /^acl:1: expected 4 fields \(user, password hash, publish, subscribe\), found 3$/],
    ['a user twice', `alice ${HASH} * *\nalice ${HASH} - -`, /^acl:2: user "alice" is already on line 1$/],
    ['a password for anonymous', `* ${HASH} - *`, /^acl:1: the anonymous entry "\*" takes no password/],
    ['no password for a user', 'alice - * *', /^acl:1: user "alice" has no password hash/],
    ['a colon in a name', `a:b ${HASH} * *`, /^acl:1: user name "a:b" contains ":"/],
    ['only negated patterns', `alice ${HASH} !x *`, /^acl:1: the publish list "!x" has only negated patterns/],
    ['an empty pattern', `alice ${HASH} a,,b *`, /^acl:1: empty pattern in the publish list "a,,b"$/],
    ['a hash of no known kind', 'alice md5:xyz * *', /^acl:1: /],
    ['nothing but comments', '# nobody\n', /^acl: no users/],
  ]
  for (const [what, text, reason] of errors) {
    it(`refuses ${what}, naming the line`, () => {
      assert.throws(() => Acl.parse(text, 'acl'), (error: Error) => error instanceof AclError && reason.test(error.message))
    })
  }
})

describe('unit: CORS decisions', () => {
  const request = (origin?: string) => ({headers: origin === undefined ? {} : {origin}}) as IncomingMessage

  it('a named origin is echoed with credentials, others get * without them, unknown ones nothing', () => {
    const cors = new CorsPolicy(['https://App.example:443/', '*'])
    assert.equal(cors.admits('https://app.example'), 'named')
    assert.equal(cors.admits('https://evil.example'), 'any')
    assert.deepEqual(cors.responseHeaders(request('https://app.example')), {
      'Access-Control-Allow-Origin': 'https://app.example',
      'Access-Control-Allow-Credentials': 'true',
      'Access-Control-Expose-Headers': 'Msgbus-Id, Msgbus-Subscribers, Msgbus-Replay-From, Msgbus-Gap',
      Vary: 'Origin',
    })
    assert.deepEqual(cors.responseHeaders(request('https://evil.example')), {
      'Access-Control-Allow-Origin': '*',
      'Access-Control-Expose-Headers': 'Msgbus-Id, Msgbus-Subscribers, Msgbus-Replay-From, Msgbus-Gap',
      Vary: 'Origin',
    })
    const named = new CorsPolicy(['https://app.example'])
    assert.equal(named.admits('https://evil.example'), 'none')
    assert.deepEqual(named.responseHeaders(request('https://evil.example')), {Vary: 'Origin'})
    assert.deepEqual(new CorsPolicy(['*']).responseHeaders(request()), {})
  })

  for (const bad of ['app.example', 'https://app.example/path', 'null', 'https://user@app.example']) {
    it(`refuses ${JSON.stringify(bad)} as an origin`, () => {
      assert.throws(() => new CorsPolicy([bad]), (error: Error) => error instanceof CorsOptionError && /is not an origin \(scheme:\/\/host\[:port\]\) or \*/.test(error.message))
    })
  }
})

describe('unit: the publish rate', () => {
  it('a burst of N per client, then one more every 1/N s; other clients are not affected', () => {
    let now = 0
    const limiter = new RateLimiter(4, () => now)
    try {
      for (let i = 0; i < 4; i++) assert.equal(limiter.take('a'), 0, `publish ${i + 1} of the burst`)
      const wait = limiter.take('a')
      assert.ok(wait > 0 && wait <= 0.25, `the fifth waits ${wait} s`)
      assert.equal(limiter.take('b'), 0, 'another client has its own bucket')
      now += 250
      assert.equal(limiter.take('a'), 0, 'a token a quarter of a second later')
      assert.ok(limiter.take('a') > 0)
      now += 10_000
      limiter.sweep()
      assert.equal(limiter.size, 0, 'buckets back to full are forgotten')
    } finally {
      limiter.close()
    }
  })
})
