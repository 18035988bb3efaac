// The type `msgbus send` gives what it publishes without -t: the body's
// magic bytes, else the file's extension, else UTF-8 text or binary. The
// built CLI (file-type goes through the esbuild bundle), a real server, and
// curl as the subscriber.
import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import {randomSource} from './support/random.js'
import {CurlStream} from './support/curl-stream.js'
import {msgbus, startBus, stopAll, tempFolder} from './support/harness.js'

const B = 'typesboundary'
/** A 1x1 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64')
const SVG = Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n')

describe('msgbus send: types', function () {
  this.timeout(30000)
  const inTemp = tempFolder('msgbus-send-types-')

  afterEach(async () => {
    CurlStream.killAll()
    await stopAll()
  })

  it('from the bytes: a PNG on stdin and in a file without extension is image/png; -t wins; UTF-8 text is text/plain; binary junk application/octet-stream', async () => {
    const server = await startBus({boundary: B})
    const subscriber = await CurlStream.open(`${server.url()}/msgbus/types`)
    // Random bytes after a start that is no format's magic and not UTF-8 (a lone continuation byte), whatever the seed.
    const junk = Buffer.concat([Buffer.from('junk\x80', 'latin1'), randomSource('send-types: junk').bytes(4096)])
    writeFileSync(inTemp('chart'), PNG)
    writeFileSync(inTemp('logo.svg'), SVG)
    writeFileSync(inTemp('notes.txt'), PNG)
    const sends: Array<[string[], Buffer | string | undefined, string]> = [
      [[], PNG, 'image/png'],
      [[inTemp('chart')], undefined, 'image/png; name="chart"'],
      // The bytes say what a file is, whatever its name says...
      [[inTemp('notes.txt')], undefined, 'image/png; name="notes.txt"'],
      // ...unless the name says a kind of what the bytes say (XML).
      [[inTemp('logo.svg')], undefined, 'image/svg+xml; name="logo.svg"'],
      [['-t', 'application/x-chart'], PNG, 'application/x-chart'],
      [[], 'grüße, 世界\n', 'text/plain; charset=utf-8'],
      [[], junk, 'application/octet-stream'],
      [['-m', 'hello'], undefined, 'text/plain; charset=utf-8'],
    ]
    for (const [args, input, type] of sends) {
      const result = await msgbus(['send', 'types', '--url', server.url(), ...args], {input: input ?? ''})
      assert.equal(result.code, 0, `${args.join(' ')} (${type}): ${result.stderr}`)
    }

    const parts = await subscriber.waitParts(sends.length)
    assert.deepEqual(
      parts.map((part) => part.headers['content-type']),
      sends.map(([, , type]) => type),
    )
    assert.ok(parts[0].body.equals(PNG) && parts[1].body.equals(PNG), 'the PNG byte for byte')
    assert.equal(parts[5].body.toString(), 'grüße, 世界\n')
    assert.ok(parts[6].body.equals(junk))
    assert.equal(parts[7].body.toString(), 'hello')
  })
})
