import {MsgbusError} from '../util/errors.js'

/** Where a `--bus redis://` link connects, and the stream it shares. */
export interface RedisTarget {
  host: string
  port: number
  username?: string
  password?: string
  db: number
  /** The stream's key; its epoch key is this plus `:epoch`. */
  stream: string
  /** The URL without its password: what logs and readiness name. */
  display: string
}

/** The stream nodes share when the URL names none. */
export const DEFAULT_STREAM = 'msgbus'

/**
 * Reads `redis://[user:pass@]HOST:PORT[/DB][?stream=NAME]`. Parsed here, not
 * by ioredis, which would not know `stream` and would take a typo for a
 * default: a URL it cannot read fails the start with a usage error.
 */
export function parseRedisUrl(text: string): RedisTarget {
  const invalid = (why: string) => new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--bus ${redact(text)}: ${why} (redis://[user:pass@]HOST:PORT[/DB][?stream=NAME])`)
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw invalid('not a URL')
  }

  if (url.protocol !== 'redis:') throw invalid('not a redis:// URL')
  if (!url.hostname) throw invalid('no host')
  const port = url.port === '' ? 6379 : Number(url.port)
  const dbText = url.pathname.replace(/^\//, '')
  if (!/^\d*$/.test(dbText)) throw invalid(`database "${dbText}" is not a number`)
  const db = dbText === '' ? 0 : Number(dbText)
  for (const key of url.searchParams.keys()) if (key !== 'stream') throw invalid(`unknown parameter "${key}"`)
  const stream = url.searchParams.get('stream') ?? DEFAULT_STREAM
  if (stream === '') throw invalid('empty stream name')
  const username = url.username === '' ? undefined : decodeURIComponent(url.username)
  const password = url.password === '' ? undefined : decodeURIComponent(url.password)
  // IPv6 hosts come bracketed from URL; the socket wants them bare.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  return {host, port, username, password, db, stream, display: redact(text)}
}

/** The URL with its password replaced, for logs. */
function redact(text: string): string {
  return text.replace(/^(redis:\/\/[^:@/]*:)[^@/]*@/, '$1***@')
}
