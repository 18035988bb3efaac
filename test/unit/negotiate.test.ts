// Which representation and which multipart framing a GET on a bus URL gets
// (docs/protocol.md, "Formats and negotiation" and "Which framing").
import assert from 'node:assert/strict'
import type {IncomingHttpHeaders} from 'node:http'
import {HttpError} from '../../src/lib/server/http/http-error.js'
import {defaultFraming, framingParam} from '../../src/lib/server/stream/framing.js'
import {chooseRepresentation} from '../../src/lib/server/stream/negotiate.js'

describe('unit: negotiation', () => {
  const cases: Array<[IncomingHttpHeaders, string | null, string]> = [
    [{}, null, 'multipart'],
    [{accept: '*/*'}, null, 'multipart'],
    [{accept: 'text/event-stream'}, null, 'sse'],
    [{accept: 'application/ndjson'}, null, 'ndjson'],
    [{accept: 'text/event-stream;q=0.5, application/x-ndjson'}, null, 'ndjson'],
    [{accept: 'text/html'}, null, 'html'],
    [{accept: '*/*'}, 'RAW', 'raw'],
    // A load that renders as a document never gets multipart.
    [{'sec-fetch-dest': 'document', accept: 'text/html'}, 'multipart', 'html'],
    [{'sec-fetch-dest': 'iframe'}, 'ndjson', 'ndjson'],
    [{'sec-fetch-dest': 'image', accept: 'image/avif,image/webp,*/*;q=0.8'}, null, 'multipart'],
    [{'sec-fetch-dest': 'empty', accept: 'text/html'}, null, 'html'],
    // No Fetch Metadata (an older browser): an Accept naming HTML is a page load.
    [{accept: 'application/xhtml+xml,*/*;q=0.8'}, 'multipart', 'html'],
  ]
  for (const [headers, format, expected] of cases) {
    it(`${JSON.stringify(headers)}${format === null ? '' : ` ?format=${format}`} → ${expected}`, () => {
      assert.equal(chooseRepresentation(headers, format), expected)
    })
  }

  it('an unknown format is a 400, an Accept that allows none a 406, each naming what there is', () => {
    assert.throws(() => chooseRepresentation({}, 'xml'), (error: HttpError) => error.status === 400 && /known: multipart, sse, ndjson, raw, html/.test(error.message))
    assert.throws(() => chooseRepresentation({accept: 'application/json'}, null), (error: HttpError) => error.status === 406 && /no stream format matches Accept: application\/json/.test(error.message))
  })

  it('framing: the URL names 2007 or rfc2046 (else a 400); auto picks by User-Agent', () => {
    assert.equal(framingParam(null), undefined)
    assert.equal(framingParam('RFC2046'), 'rfc2046')
    assert.throws(() => framingParam('1999'), (error: HttpError) => error.status === 400)
    const agent = (ua?: string) => defaultFraming('auto', ua === undefined ? {} : {'user-agent': ua})
    assert.deepEqual(
      ['libevmsg', 'libevmsg/1.0', 'Python-urllib/1.17', 'Python-urllib/2.7', 'Python-urllib/3.12', 'curl/8.14.1', 'libevmsgx', undefined].map(agent),
      ['2007', '2007', '2007', '2007', 'rfc2046', 'rfc2046', 'rfc2046', 'rfc2046'],
    )
    assert.equal(defaultFraming('2007', {'user-agent': 'curl/8'}), '2007')
    assert.equal(defaultFraming('rfc2046', {'user-agent': 'libevmsg'}), 'rfc2046')
  })
})
