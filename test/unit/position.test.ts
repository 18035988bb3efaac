// Positions (?since=, msgbus dump --since) and durations, alone:
// protocol/position.ts and util/duration.ts.
import assert from 'node:assert/strict'
import {parsePosition, positionParam} from '../../src/lib/protocol/position.js'
import {formatDuration, parseDuration} from '../../src/lib/util/duration.js'
import {MsgbusError} from '../../src/lib/util/errors.js'

const NOW = Date.UTC(2026, 11, 2, 12, 0, 0)

function refused(run: () => unknown, code: string): MsgbusError {
  try {
    run()
  } catch (error) {
    assert.ok(error instanceof MsgbusError, String(error))
    assert.equal(error.code, code)
    assert.ok(!error.message.includes('\n'), `one line: ${error.message}`)
    return error
  }

  assert.fail('not refused')
}

describe('unit: positions and durations', () => {
  describe('parsePosition', () => {
    const cases: Array<[string, ReturnType<typeof parsePosition>]> = [
      ['all', {kind: 'all'}],
      [' ALL ', {kind: 'all'}],
      ['1795764040540-3', {kind: 'id', id: '1795764040540-3'}],
      ['0-0', {kind: 'id', id: '0-0'}],
      [' 1795764040540-3 ', {kind: 'id', id: '1795764040540-3'}],
      ['1795764040540', {kind: 'time', time: 1_795_764_040_540}],
      // Digits alone are unix milliseconds, never seconds or a duration.
      ['90', {kind: 'time', time: 90}],
      ['0', {kind: 'time', time: 0}],
      ['2026-12-02T10:00:00Z', {kind: 'time', time: Date.UTC(2026, 11, 2, 10)}],
      ['2026-12-02t10:00:00z', {kind: 'time', time: Date.UTC(2026, 11, 2, 10)}],
      ['2026-12-02T10:00:00.250Z', {kind: 'time', time: Date.UTC(2026, 11, 2, 10, 0, 0, 250)}],
      ['2026-12-02T10:00:00+02:00', {kind: 'time', time: Date.UTC(2026, 11, 2, 8)}],
      ['2026-12-02T10:00:00-0130', {kind: 'time', time: Date.UTC(2026, 11, 2, 11, 30)}],
      ['2026-12-02 10:00Z', {kind: 'time', time: Date.UTC(2026, 11, 2, 10)}],
      // A date alone is midnight UTC.
      ['2026-12-02', {kind: 'time', time: Date.UTC(2026, 11, 2)}],
      ['90s', {kind: 'time', time: NOW - 90_000}],
      ['10m', {kind: 'time', time: NOW - 600_000}],
      ['1h30m', {kind: 'time', time: NOW - 5_400_000}],
      ['500ms', {kind: 'time', time: NOW - 500}],
      ['2d', {kind: 'time', time: NOW - 172_800_000}],
      ['1.5h', {kind: 'time', time: NOW - 5_400_000}],
      ['0s', {kind: 'time', time: NOW}],
    ]
    for (const [text, expected] of cases) {
      it(`${JSON.stringify(text)}`, () => assert.deepEqual(parsePosition(text, NOW), expected))
    }

    for (const text of ['', ' ', 'x', 'yesterday', '10x', '-5m', '+5m', '1h30', '2026-13-45', '2026-12-02T25:00:00Z', '12-', '-1', '1-2-3', 'all-1', '1e3', '1.5', '99999999999999999w', '12345678901234567']) {
      it(`refuses ${JSON.stringify(text)} with one line naming the forms`, () => {
        const error = refused(() => parsePosition(text, NOW), 'ERR_MSGBUS_POSITION_INVALID')
        assert.equal(error.message, `not a position: ${JSON.stringify(text)} (a message id <unix-ms>-<seq>, a time in unix ms or ISO 8601, a duration such as 10m, or all)`)
      })
    }

    it('quotes at most 64 characters of what it refuses', () => {
      const error = refused(() => parsePosition('x'.repeat(1000), NOW), 'ERR_MSGBUS_POSITION_INVALID')
      assert.ok(error.message.includes(`"${'x'.repeat(64)}"`))
      assert.ok(!error.message.includes('x'.repeat(65)))
    })

    it('a duration counts back from now when none is given', () => {
      const before = Date.now()
      const position = parsePosition('1m')
      assert.equal(position.kind, 'time')
      const time = (position as {time: number}).time
      assert.ok(time >= before - 60_000 && time <= Date.now() - 60_000)
    })

    it('positionParam gives back what parsePosition reads the same', () => {
      for (const text of ['all', '1795764040540-3', '1795764040540', '2026-12-02T10:00:00Z', '10m']) {
        const position = parsePosition(text, NOW)
        assert.deepEqual(parsePosition(positionParam(position), NOW), position)
      }
    })
  })

  describe('parseDuration', () => {
    const cases: Array<[string, number]> = [
      ['90', 90_000],
      ['1.5', 1500],
      ['0', 0],
      ['90s', 90_000],
      ['10m', 600_000],
      ['1h30m', 5_400_000],
      ['1h30m15s', 5_415_000],
      ['2d', 172_800_000],
      ['1w', 604_800_000],
      ['500ms', 500],
      ['1m500ms', 60_500],
      ['1H', 3_600_000],
      ['10MS', 10],
      [' 10m ', 600_000],
      ['0.5s', 500],
      ['0.0004s', 0],
    ]
    for (const [text, ms] of cases) it(`${JSON.stringify(text)} is ${ms} ms`, () => assert.equal(parseDuration(text), ms))

    for (const text of ['', 'x', '10x', '1h30', '-1s', '1e3', 's', '1 h', '.5s', '1.s', 'ms']) {
      it(`refuses ${JSON.stringify(text)}`, () => {
        const error = refused(() => parseDuration(text), 'ERR_MSGBUS_DURATION_INVALID')
        assert.match(error.message, /^not a duration: /)
      })
    }

    it('refuses one too long to count in milliseconds', () => {
      const error = refused(() => parseDuration('99999999999w'), 'ERR_MSGBUS_DURATION_INVALID')
      assert.match(error.message, /^duration too long: /)
    })
  })

  describe('formatDuration', () => {
    const cases: Array<[number, string]> = [
      [0, '0 ms'],
      [999, '999 ms'],
      [1000, '1 s'],
      [1499, '1 s'],
      [1500, '2 s'],
      [59_999, '1 min'],
      [90_000, '1 min 30 s'],
      [3_600_000, '1 h'],
      [5_400_000, '1 h 30 min'],
      [86_400_000, '1 d'],
      [90_061_000, '1 d 1 h 1 min 1 s'],
      [604_800_000, '7 d'],
    ]
    for (const [ms, text] of cases) it(`${ms} ms is ${JSON.stringify(text)}`, () => assert.equal(formatDuration(ms), text))
  })
})
