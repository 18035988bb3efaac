// The library's errors as a caller tells them apart: each has its stable
// `code` (README's table), is a MsgbusError, and carries the error it was
// made from as `cause`. And reasonOf/messageOf, the one-line reasons.
import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import {createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {
  AclError,
  ChannelError,
  ClientError,
  CorsOptionError,
  MSGBUS_ERROR_CODES,
  MsgbusError,
  MultipartError,
  MultipartParser,
  PatternListError,
  TargetError,
  compileFilter,
  decodeChannel,
  parseSize,
  publish,
  resolveTarget,
  subscribe,
  type BusServerOptions,
  type MsgbusErrorCode,
} from '../src/lib/index.js'
import {HashFormatError} from '../src/lib/server/access/password-hash.js'
import {messageOf, reasonOf} from '../src/lib/util/errors.js'
import {portOf, startBus, stopAll, tempFolder} from './support/harness.js'

/** Runs `work`, expecting a MsgbusError with `code` (and the class, when given); returns it. */
async function failure(work: () => unknown, code: MsgbusErrorCode, type: abstract new (...args: never[]) => Error = MsgbusError): Promise<MsgbusError> {
  let caught: unknown
  try {
    await work()
  } catch (error) {
    caught = error
  }

  assert.ok(caught instanceof MsgbusError, `not a MsgbusError: ${String(caught)}`)
  assert.ok(caught instanceof type, `not a ${type.name}: ${String(caught)}`)
  assert.equal(caught.code, code, caught.message)
  return caught
}

const startWith = (options: BusServerOptions) => () => startBus(options)

describe('error codes and causes', () => {
  const inTemp = tempFolder('msgbus-codes-')
  afterEach(stopAll)

  it('every code is ERR_MSGBUS_..., once', () => {
    for (const code of MSGBUS_ERROR_CODES) assert.match(code, /^ERR_MSGBUS_[A-Z_]+$/)
    assert.equal(new Set(MSGBUS_ERROR_CODES).size, MSGBUS_ERROR_CODES.length)
  })

  describe('protocol', () => {
    it('a bad channel: ChannelError, ERR_MSGBUS_CHANNEL_INVALID, the message as before', async () => {
      const error = await failure(() => decodeChannel('%FF'), 'ERR_MSGBUS_CHANNEL_INVALID', ChannelError)
      assert.equal(error.message, 'the URL is not valid UTF-8 once percent-decoded')
    })

    it("a filter's list over the limits: PatternListError naming the filter, the list's own error as cause", async () => {
      const error = await failure(() => compileFilter({type: Array.from({length: 40}, () => 'a').join(',')}), 'ERR_MSGBUS_PATTERN_LIST_INVALID', PatternListError)
      assert.match(error.message, /^the type= filter: a list has at most 32 patterns/)
      assert.ok(error.cause instanceof PatternListError)
    })

    it('a multipart parser refusing: MultipartError, ERR_MSGBUS_MULTIPART_INVALID', async () => {
      await failure(() => new MultipartParser('', () => {}), 'ERR_MSGBUS_MULTIPART_INVALID', MultipartError)
    })

    it('parseSize: ERR_MSGBUS_SIZE_INVALID', async () => {
      await failure(() => parseSize('lots'), 'ERR_MSGBUS_SIZE_INVALID')
    })
  })

  describe('client', () => {
    it('a target with a bad channel or a bad base URL: TargetError, the cause behind it', async () => {
      const channel = await failure(() => resolveTarget('http://h/msgbus/%FF'), 'ERR_MSGBUS_TARGET_INVALID', TargetError)
      assert.ok(channel.cause instanceof ChannelError)
      const url = await failure(() => resolveTarget('foo', {url: 'not a url'}), 'ERR_MSGBUS_TARGET_INVALID', TargetError)
      assert.ok(url.cause instanceof TypeError)
    })

    it('no answer: ClientError, ERR_MSGBUS_REQUEST_FAILED, with undici’s error as cause', async () => {
      const server = await startBus()
      const url = `http://127.0.0.1:${portOf(server)}/msgbus/x`
      await server.stop()
      const error = await failure(() => publish(url, 'hi'), 'ERR_MSGBUS_REQUEST_FAILED', ClientError)
      assert.equal(error.message, `${url}: connection refused`)
      assert.ok(error.cause instanceof Error)
    })

    it('an error status: ERR_MSGBUS_HTTP_STATUS and the status; no channel: ERR_MSGBUS_TARGET_INVALID', async () => {
      const server = await startBus({secret: 'pw'})
      const error = await failure(() => publish(`${server.url()}/msgbus/x`, 'hi'), 'ERR_MSGBUS_HTTP_STATUS', ClientError)
      assert.equal((error as ClientError).status, 401)
      await failure(() => publish(`${server.url()}/msgbus/`, 'hi'), 'ERR_MSGBUS_TARGET_INVALID', ClientError)
    })

    it('an answer that is not a stream: ERR_MSGBUS_RESPONSE_INVALID', async () => {
      const other = createServer((_req, res) => res.writeHead(200, {'Content-Type': 'text/plain'}).end('hello\n'))
      await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
      try {
        const {port} = other.address() as AddressInfo
        const error = await failure(async () => {
          for await (const _message of subscribe(`http://127.0.0.1:${port}/msgbus/x`, {reconnect: false}));
        }, 'ERR_MSGBUS_RESPONSE_INVALID', ClientError)
        assert.match(error.message, /not a multipart stream \(Content-Type: text\/plain\)$/)
      } finally {
        other.close()
      }
    })
  })

  describe('server', () => {
    it('a busy port: ERR_MSGBUS_PORT_IN_USE, with EADDRINUSE as cause', async () => {
      const first = await startBus()
      const error = await failure(startWith({port: portOf(first)}), 'ERR_MSGBUS_PORT_IN_USE')
      assert.match(error.message, /^HTTP port 127\.0\.0\.1:\d+ is already in use$/)
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'EADDRINUSE')
    })

    it('an address not on this machine: ERR_MSGBUS_LISTEN_FAILED, with the cause', async () => {
      const error = await failure(startWith({address: '192.0.2.1'}), 'ERR_MSGBUS_LISTEN_FAILED')
      assert.equal(error.message, 'HTTP address 192.0.2.1 is not available on this machine')
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'EADDRNOTAVAIL')
    })

    it('an unusable certificate: ERR_MSGBUS_TLS_INVALID, with OpenSSL’s error as cause', async () => {
      const error = await failure(startWith({cert: 'not a certificate'}), 'ERR_MSGBUS_TLS_INVALID')
      assert.match(error.message, /^certificate or key unusable: /)
      assert.ok(error.cause instanceof Error)
    })

    it('a missing document root: ERR_MSGBUS_DOCROOT_INVALID, with ENOENT as cause', async () => {
      const error = await failure(startWith({docroot: inTemp('nowhere')}), 'ERR_MSGBUS_DOCROOT_INVALID')
      assert.equal(error.message, `document root ${inTemp('nowhere')}: no such folder`)
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENOENT')
    })

    it('options that cannot be: ERR_MSGBUS_OPTION_INVALID (framing, --cors, acl with secret)', async () => {
      await failure(startWith({framing: 'nonsense' as never}), 'ERR_MSGBUS_OPTION_INVALID')
      await failure(startWith({cors: ['not an origin']}), 'ERR_MSGBUS_OPTION_INVALID', CorsOptionError)
      writeFileSync(inTemp('open.acl'), '* - - *\n')
      await failure(startWith({acl: inTemp('open.acl'), secret: 'pw'}), 'ERR_MSGBUS_OPTION_INVALID')
    })

    it('an ACL that cannot be read or used: AclError, ERR_MSGBUS_ACL_UNREADABLE or ERR_MSGBUS_ACL_INVALID, the cause behind it', async () => {
      const unreadable = await failure(startWith({acl: inTemp('missing.acl')}), 'ERR_MSGBUS_ACL_UNREADABLE', AclError)
      assert.equal(unreadable.message, `cannot read ACL ${inTemp('missing.acl')}: ENOENT`)
      assert.equal((unreadable.cause as NodeJS.ErrnoException).code, 'ENOENT')
      writeFileSync(inTemp('bad.acl'), 'alice $2b$99$nonsense - chat\n')
      const invalid = await failure(startWith({acl: inTemp('bad.acl')}), 'ERR_MSGBUS_ACL_INVALID', AclError)
      assert.ok(invalid.cause instanceof HashFormatError)
      assert.equal((invalid.cause as HashFormatError).code, 'ERR_MSGBUS_HASH_INVALID')
      writeFileSync(inTemp('long.acl'), `* - - ${Array.from({length: 40}, (_, i) => `c${i}`).join(',')}\n`)
      assert.ok((await failure(startWith({acl: inTemp('long.acl')}), 'ERR_MSGBUS_ACL_INVALID', AclError)).cause instanceof PatternListError)
    })

    it('a call the server is not in a state for: ERR_MSGBUS_SERVER_STATE', async () => {
      const server = await startBus()
      await failure(() => server.reloadAcl(), 'ERR_MSGBUS_SERVER_STATE')
      await failure(() => server.reloadCertificate('x'), 'ERR_MSGBUS_SERVER_STATE')
      await failure(() => server.url('https'), 'ERR_MSGBUS_SERVER_STATE')
    })
  })

  describe('reasonOf and messageOf', () => {
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), {code: 'ENOENT'})

    it("reasonOf: Node's code, else the message; words for some codes", () => {
      assert.equal(reasonOf(enoent), 'ENOENT')
      assert.equal(reasonOf(enoent, {ENOENT: 'no such file'}), 'no such file')
      assert.equal(reasonOf(enoent, {EISDIR: 'is a folder'}), 'ENOENT')
      assert.equal(reasonOf(new Error('plain')), 'plain')
      assert.equal(reasonOf('thrown text'), 'thrown text')
    })

    it('messageOf: the message, unless a word names the code', () => {
      assert.equal(messageOf(enoent), enoent.message)
      assert.equal(messageOf(enoent, {ENOENT: 'no such folder'}), 'no such folder')
      assert.equal(messageOf(42), '42')
    })
  })
})
