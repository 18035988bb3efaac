import {MsgbusError} from './errors.js'

const UNITS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000}

/**
 * Parses a duration as people type one into a flag or a URL: `90s`, `10m`,
 * `1h30m`, `2d`, `500ms`; a bare number is seconds. Returns milliseconds.
 * Throws a MsgbusError, ERR_MSGBUS_DURATION_INVALID.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim()
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return checked(Number(trimmed) * 1000, text)
  const parts = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/i.test(trimmed) ? trimmed.match(/\d+(?:\.\d+)?(?:ms|s|m|h|d|w)/gi) : null
  if (!parts) {
    throw new MsgbusError('ERR_MSGBUS_DURATION_INVALID', `not a duration: ${JSON.stringify(text)} (seconds, or a number with ms, s, m, h, d or w, as in 90s, 10m or 1h30m)`)
  }

  let ms = 0
  for (const part of parts) {
    const [, number, unit] = /^(\d+(?:\.\d+)?)(\w+)$/.exec(part)!
    ms += Number(number) * UNITS[unit.toLowerCase()]
  }

  return checked(ms, text)
}

function checked(ms: number, text: string): number {
  const rounded = Math.round(ms)
  if (!Number.isSafeInteger(rounded)) throw new MsgbusError('ERR_MSGBUS_DURATION_INVALID', `duration too long: ${JSON.stringify(text)}`)
  return rounded
}

/** `90 s`, `10 min`, `1 h 30 min`, `2 d`: for help texts and logs. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  const out: string[] = []
  let rest = Math.round(ms / 1000)
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['min', 60], ['s', 1]] as const) {
    if (rest >= size) {
      out.push(`${Math.floor(rest / size)} ${unit}`)
      rest %= size
    }
  }

  return out.join(' ')
}

/** As a user would type it, and parseDuration reads it back: `90s` as `1m30s`, `1h`, `2d`, `500ms`, `0`. */
export function durationAsTyped(ms: number): string {
  if (ms === 0) return '0'
  return formatDuration(ms).replace(/ min/g, 'm').replace(/ /g, '')
}
