// Which failed requests a client tries again (src/lib/client/http.ts,
// isRetryable): only those that can heal; the rest fail at once.
import assert from 'node:assert/strict'
import {ClientError, describeFailure, isRetryable} from '../../src/lib/client/http.js'
import {MsgbusError} from '../../src/lib/util/errors.js'

/** What undici throws: an error with a code, possibly as the cause of another. */
function failure(code: string, wrapped = false): ClientError {
  const error = Object.assign(new Error(code), {code})
  return describeFailure('http://x/msgbus/c', wrapped ? new TypeError('fetch failed', {cause: error}) : error)
}

describe('unit: isRetryable', () => {
  it('retries what can heal: refused, reset, closed, timeouts, a temporary lookup failure, 408, 429, 5xx', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']) {
      assert.equal(isRetryable(failure(code)), true, code)
      assert.equal(isRetryable(failure(code, true)), true, `${code} as a cause`)
    }

    for (const status of [408, 429, 500, 502, 503, 504]) assert.equal(isRetryable(new ClientError('x', status)), true, String(status))
  })

  it('fails at once on what will not: TLS, an unknown host, other 4xx, 501, 505, an answer that is not the protocol, an error it does not know', () => {
    for (const code of ['DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ENOTFOUND', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ESOMETHINGNEW']) {
      assert.equal(isRetryable(failure(code)), false, code)
    }

    for (const status of [400, 401, 403, 404, 413, 501, 505]) assert.equal(isRetryable(new ClientError('x', status)), false, String(status))
    assert.equal(isRetryable(describeFailure('http://x/', new MsgbusError('ERR_MSGBUS_MULTIPART_INVALID', 'bad part'))), false)
    assert.equal(failure('DEPTH_ZERO_SELF_SIGNED_CERT').message, 'http://x/msgbus/c: TLS: self-signed certificate (use --cacert FILE or --insecure)')
  })
})
