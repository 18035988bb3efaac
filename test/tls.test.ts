// HTTPS as run in production: modern TLS only, and a certificate renewed
// with SIGHUP while subscriptions stay up.
import assert from 'node:assert/strict'
import {copyFileSync, writeFileSync} from 'node:fs'
import {connect, type ConnectionOptions} from 'node:tls'
import {CurlStream} from './support/curl-stream.js'
import {curl, msgbus, run, ServeProcess, tempFolder} from './support/harness.js'
import {makeCertificate} from './support/tls.js'

/** A TLS handshake with the server: the certificate's common name and the protocol, or the error. */
function handshake(port: number, options: ConnectionOptions = {}): Promise<{commonName: string; protocol: string | null}> {
  return new Promise((resolve, reject) => {
    const socket = connect({port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false, ...options}, () => {
      const certificate = socket.getPeerCertificate()
      resolve({commonName: String(certificate.subject.CN), protocol: socket.getProtocol()})
      socket.destroy()
    })
    socket.on('error', reject)
  })
}

describe('TLS', function () {
  this.timeout(20000)
  let first: {certFile: string; keyFile: string}
  let second: {certFile: string; keyFile: string}
  const live = () => ({certFile: inTemp('live.cert.pem'), keyFile: inTemp('live.key.pem')})

  const inTemp = tempFolder('msgbus-tls-')
  before(async () => {
    first = await makeCertificate(inTemp(), 'first', 'first')
    second = await makeCertificate(inTemp(), 'second', 'second')
  })

  afterEach(() => CurlStream.killAll())

  async function serveWith(pair: {certFile: string; keyFile: string}): Promise<ServeProcess> {
    copyFileSync(pair.certFile, live().certFile)
    copyFileSync(pair.keyFile, live().keyFile)
    return ServeProcess.start(['-p', '0', '-P', '0', '-l', '127.0.0.1', '-c', live().certFile, '--key', live().keyFile])
  }

  it('TLS 1.2 and 1.3 only: a client that offers at most TLS 1.1 is refused; a current one gets TLS 1.3', async () => {
    const serve = await serveWith(first)
    try {
      const port = serve.port('HTTPS')
      assert.equal((await handshake(port)).protocol, 'TLSv1.3')
      assert.equal((await handshake(port, {maxVersion: 'TLSv1.2'})).protocol, 'TLSv1.2')
      await assert.rejects(handshake(port, {minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0'}))
    } finally {
      await serve.stop()
    }
  })

  it('SIGHUP: new connections get the renewed certificate, an open subscription keeps receiving; an unreadable one keeps the old @slow', async () => {
    const serve = await serveWith(first)
    try {
      const port = serve.port('HTTPS')
      const url = `https://127.0.0.1:${port}/msgbus/renewed`
      const subscriber = await CurlStream.open(url, ['-k'])
      assert.equal((await handshake(port)).commonName, 'first')

      copyFileSync(second.certFile, live().certFile)
      copyFileSync(second.keyFile, live().keyFile)
      serve.child.kill('SIGHUP')
      await serve.logged(/reload certificate .*live\.cert\.pem and key .*live\.key\.pem/)
      assert.equal((await handshake(port)).commonName, 'second')

      writeFileSync(live().certFile, 'not a certificate\n')
      serve.child.kill('SIGHUP')
      await serve.logged(/reload certificate or key unusable: .*; keeping the previous certificate/)
      assert.equal((await handshake(port)).commonName, 'second')

      const published = await curl(['-sk', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Content-Type: text/plain', '-d', 'after renewal', url])
      assert.equal(published.stdout, '204')
      await subscriber.waitParts(1)
      assert.deepEqual(subscriber.bodies(), ['after renewal'])
    } finally {
      await serve.stop()
    }
  })

  it('a key that does not belong to the certificate: serve refuses to start, and SIGHUP keeps the pair in force @slow', async () => {
    // An RSA certificate with an EC key gets past OpenSSL unnoticed; two EC keys would not.
    const rsa = {certFile: inTemp('rsa.cert.pem'), keyFile: inTemp('rsa.key.pem')}
    const made = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', rsa.keyFile, '-out', rsa.certFile, '-days', '2', '-subj', '/CN=rsa'])
    assert.equal(made.code, 0, made.stderr)
    for (const [cert, key] of [[rsa.certFile, first.keyFile], [first.certFile, second.keyFile]]) {
      const mismatched = await msgbus(['serve', '-p', '0', '-P', '0', '-l', '127.0.0.1', '-c', cert, '--key', key], {timeoutMs: 10000})
      assert.equal(mismatched.code, 1, mismatched.stderr)
      assert.match(mismatched.stderr, /^msgbus serve: the key does not belong to the certificate \(its public key is another\)\n$/)
    }

    const serve = await serveWith(first)
    try {
      const port = serve.port('HTTPS')
      copyFileSync(rsa.certFile, live().certFile)
      serve.child.kill('SIGHUP')
      await serve.logged(/reload the key does not belong to the certificate .*; keeping the previous certificate/)
      assert.doesNotMatch(serve.stderr, /reload certificate /, 'no reload reported as done')
      const {commonName} = await handshake(port)
      assert.equal(commonName, 'first', 'handshakes still succeed with the pair in force')
    } finally {
      await serve.stop()
    }
  })
})
