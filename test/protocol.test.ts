// The protocol's pure pieces: pattern lists, channel names, sizes, ids.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {MessageIdGenerator, compareMessageIds, compilePatternList, decodeChannel, channelPath, parseSize, ChannelError} from '../src/lib/index.js'
import {durationAsTyped, parseDuration} from '../src/lib/util/duration.js'
import {sizeAsTyped} from '../src/lib/util/size.js'

describe('pattern lists (OpenSSH match_pattern_list)', () => {
  const cases: Array<[string, string, boolean, boolean?]> = [
    ['text/*', 'text/plain', true],
    ['text/*', 'image/png', false],
    ['text/*,image/*', 'image/png', true],
    ['image/???', 'image/png', true],
    ['image/???', 'image/jpeg', false],
    ['*,!image/*', 'text/plain', true],
    ['*,!image/*', 'image/gif', false],
    ['!image/*,*', 'image/gif', false],
    ['!image/*', 'text/plain', false],
    ['a*', 'alice', true],
    ['a*', 'Alice', false],
    ['a*', 'Alice', true, true],
    ['al.ce', 'alice', false],
    ['(x)|y', '(x)|y', true],
    ['x', 'xx', false],
    // The empty value (a message without a sender): as OpenSSH, an empty list has no pattern,
    // a leading or doubled comma adds the empty pattern, and a trailing one adds nothing.
    ['', '', false],
    ['*', '', true],
    ['?*', '', false],
    [',', '', true],
    ['a,,b', '', true],
    ['a,', '', false],
    ['é?', 'éü', true],
    ['application/x-*', 'application/x-ndjson', true],
    ['a-b,[c]', '[c]', true],
  ]
  for (const [list, value, expected, ignoreCase] of cases) {
    it(`${JSON.stringify(list)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(value)}${ignoreCase ? ' ignoring case' : ''}`, () => {
      assert.equal(compilePatternList(list, {ignoreCase})(value), expected)
    })
  }
})

describe('channel names', () => {
  it('decodes percent-encoding as UTF-8, slashes and %2F alike', () => {
    assert.equal(decodeChannel('sensors/kitchen'), 'sensors/kitchen')
    assert.equal(decodeChannel('sensors%2Fkitchen'), 'sensors/kitchen')
    assert.equal(decodeChannel('caf%C3%A9'), 'café')
    assert.equal(decodeChannel(''), '')
  })

  for (const [raw, why] of [
    ['a%09b', 'TAB'], ['a%7Fb', 'DEL'], ['a%00', 'NUL'], ['%zz', 'bad escape'], ['a%2', 'short escape'],
    ['%C3%28', 'invalid UTF-8'], ['%FF', 'invalid UTF-8'], ['x'.repeat(256), 'over 255 bytes'], ['%C3%A9'.repeat(128), '256 bytes of é'],
  ]) {
    it(`refuses ${why}`, () => assert.throws(() => decodeChannel(raw), ChannelError))
  }

  it('accepts 255 bytes', () => assert.equal(decodeChannel('x'.repeat(255)).length, 255))

  it('round-trips any name through its Content-Location path', () => {
    fc.assert(
      fc.property(fc.string({unit: 'grapheme', maxLength: 40}).filter((s) => !/[\u0000-\u001f\u007f]/.test(s) && Buffer.byteLength(s) <= 255), (name) => {
        const path = channelPath(name)
        assert.ok(path.startsWith('/msgbus/'))
        assert.ok(/^[\x21-\x7e]*$/.test(path), 'the path is plain ASCII')
        assert.equal(decodeChannel(path.slice('/msgbus/'.length)), name)
      }),
    )
  })
})

describe('sizes', () => {
  for (const [text, bytes] of [['0', 0], ['100', 100], ['64k', 65536], ['64K', 65536], ['8M', 8388608], ['8MiB', 8388608], ['8mb', 8388608], ['1.5k', 1536], ['1G', 1073741824], ['10 b', 10]] as const) {
    it(`${text} is ${bytes} bytes`, () => assert.equal(parseSize(text), bytes))
  }

  for (const text of ['', 'k', '-1', '8 parsecs', '1e3', 'lots']) {
    it(`refuses ${JSON.stringify(text)}`, () => assert.throws(() => parseSize(text), /not a size/))
  }

  it('are shown as typed (8MiB), and read back as the same size', () => {
    assert.deepEqual([8388608, 65536, 1073741824, 1000, 0].map(sizeAsTyped), ['8MiB', '64KiB', '1GiB', '1000', '0'])
    fc.assert(fc.property(fc.nat(2 ** 40), (bytes) => parseSize(sizeAsTyped(bytes)) === bytes))
  })
})

describe('durations as typed', () => {
  it('are shown as a user types them (1h, 1m30s), and read back as the same duration', () => {
    assert.deepEqual([3_600_000, 90_000, 0, 500, 86_400_000 + 60_000].map(durationAsTyped), ['1h', '1m30s', '0', '500ms', '1d1m'])
    fc.assert(fc.property(fc.nat(10 ** 6), (seconds) => parseDuration(durationAsTyped(seconds * 1000)) === seconds * 1000))
  })
})

describe('message ids', () => {
  it('never go down when the clock steps back', () => {
    const clock = [1000, 1000, 1001, 900, 900, 1001, 1002, 5, 1003]
    let i = 0
    const ids = new MessageIdGenerator(() => clock[i++])
    const issued = clock.map(() => ids.next())
    assert.deepEqual(issued, ['1000-0', '1000-1', '1001-0', '1001-1', '1001-2', '1001-3', '1002-0', '1002-1', '1003-0'])
    for (let k = 1; k < issued.length; k++) assert.ok(compareMessageIds(issued[k - 1], issued[k]) < 0)
  })

  it('compare as a pair of integers, not as strings', () => {
    assert.ok(compareMessageIds('1000-9', '1000-10') < 0)
    assert.ok(compareMessageIds('999-5', '1000-0') < 0)
  })
})

describe('dump line fields', () => {
  it('each field is free of spaces, so the line splits on them', async () => {
    const {formatLine} = await import('../src/lib/cli/message-format.js')
    const line = formatLine({channel: 'a b%c', type: 'text/plain; charset=utf-8', sender: 'x y', headers: {}, body: Buffer.from('one two'), time: 0})
    assert.equal(line, '1970-01-01T00:00:00.000Z a%20b%25c text/plain;charset=utf-8 x\\x20y 7 one two\n')
    assert.equal(line.split(' ').length, 7)
  })
})
