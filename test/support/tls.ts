// Self-signed certificates for the HTTPS tests, made by the real openssl.
import assert from 'node:assert/strict'
import {join} from 'node:path'
import {run} from './harness.js'

/** Writes `<name>.cert.pem` and `<name>.key.pem` (EC P-256, for localhost and 127.0.0.1) into `dir`. */
export async function makeCertificate(dir: string, name = 'server', commonName = 'localhost'): Promise<{certFile: string; keyFile: string}> {
  const certFile = join(dir, `${name}.cert.pem`)
  const keyFile = join(dir, `${name}.key.pem`)
  const made = await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${commonName}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ])
  assert.equal(made.code, 0, made.stderr)
  return {certFile, keyFile}
}
