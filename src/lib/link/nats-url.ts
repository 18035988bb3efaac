import {MsgbusError} from '../util/errors.js'

/** Where a NATS link connects and which stream it shares (`--bus nats://[user:pass@]host:port[?stream=NAME&storage=file|memory]`). */
export interface NatsTarget {
  /** `host:port`, as the client takes it. */
  server: string
  user?: string
  pass?: string
  /** The JetStream stream the nodes share; its subject is `msgbus.<stream>`. */
  stream: string
  /** Where nats-server keeps the stream when this node is the one that makes it. */
  storage: 'file' | 'memory'
  /** The URL without its password, for logs and readiness. */
  shown: string
}

// JetStream stream names may not hold spaces, `.`, `*`, `>`, path separators or control characters.
const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/

/** Reads a `nats://` URL; throws ERR_MSGBUS_OPTION_INVALID, in one line, for one it cannot use. */
export function parseNatsUrl(text: string): NatsTarget {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--bus ${text}: not a URL`)
  }

  if (url.protocol !== 'nats:') throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--bus ${text}: not a nats:// URL`)
  if (url.hostname === '') throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--bus ${text}: no host`)
  for (const key of url.searchParams.keys()) {
    if (key !== 'stream' && key !== 'storage') throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--bus ${text}: unknown parameter ${key} (stream, storage)`)
  }

  const stream = url.searchParams.get('stream') ?? 'msgbus'
  if (!STREAM_NAME.test(stream)) throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--bus ${text}: a stream name is letters, digits, _ and - (at most 64)`)
  const storage = url.searchParams.get('storage') ?? 'file'
  if (storage !== 'file' && storage !== 'memory') throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--bus ${text}: storage is file or memory`)
  const server = `${url.hostname}:${url.port === '' ? '4222' : url.port}`
  const user = url.username === '' ? undefined : decodeURIComponent(url.username)
  const pass = url.password === '' ? undefined : decodeURIComponent(url.password)
  return {server, user, pass, stream, storage, shown: `nats://${user === undefined ? '' : `${url.username}@`}${server}?stream=${stream}`}
}
