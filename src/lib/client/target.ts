import {BUS_PREFIX, channelPath, ChannelError, decodeChannel} from '../protocol/channel.js'
import {codedError} from '../util/errors.js'

export const DEFAULT_BASE_URL = 'http://localhost:8888'

export interface ClientOptions {
  /** The server's base URL, for targets given as channel names. Default: $MSGBUS_URL, else http://localhost:8888. */
  url?: string
  /** `user:password` (or just `user`) for HTTP Basic auth; a URL's own `user:pass@` is used when this is not given. */
  user?: string
  /** PEM CA certificate(s) to trust for HTTPS, beside the system's. */
  ca?: string | Buffer
  /** Credentials for when neither `user` nor the URL gives any (the CLI's $MSGBUS_USER). */
  defaultUser?: string
  /** Skip HTTPS certificate checks (self-signed test servers). */
  insecure?: boolean
  /** Where MSGBUS_URL is read from; default process.env. */
  env?: NodeJS.ProcessEnv
}

/** A resolved target: the URL to use (without credentials), its channel, and the Authorization header if any. */
export interface Target {
  url: URL
  /** The channel it names; '' for every channel (or a URL outside /msgbus/). */
  channel: string
  authorization?: string
  /** The URL for messages: credentials removed. */
  display: string
}

/** A target (URL or channel name) or base URL that names no bus URL. */
export class TargetError extends codedError('ERR_MSGBUS_TARGET_INVALID') {}

function basic(user: string): string {
  return `Basic ${Buffer.from(user.includes(':') ? user : `${user}:`, 'utf8').toString('base64')}`
}

function parseUrl(text: string, what: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch (error) {
    throw new TargetError(`not a URL: ${JSON.stringify(text)} (${what})`, {cause: error})
  }

  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TargetError(`not an http or https URL: ${JSON.stringify(text)} (${what})`)
  }

  return url
}

/**
 * A target is a full URL (`https://bus:4444/msgbus/foo`) or a channel name
 * (`foo`, `sensors/kitchen`, `/` or `` for every channel) resolved against
 * the base URL: the `url` option, else MSGBUS_URL, else localhost:8888.
 */
export function resolveTarget(target: string, options: ClientOptions = {}): Target {
  let url: URL
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    url = parseUrl(target, 'the target')
  } else {
    const fromEnv = (options.env ?? process.env).MSGBUS_URL
    const base = parseUrl(options.url ?? (fromEnv || DEFAULT_BASE_URL), options.url ? '--url' : fromEnv ? 'MSGBUS_URL' : 'default')
    const channel = target.replace(/^\/+/, '')
    if (/[\u0000-\u001f\u007f]/.test(channel)) throw new TargetError(`control characters are not allowed in a channel name: ${JSON.stringify(target)}`)
    url = new URL(base.pathname.replace(/\/+$/, '') + channelPath(channel), base)
    url.username = base.username
    url.password = base.password
  }

  let channel = ''
  if (url.pathname.startsWith(BUS_PREFIX)) {
    try {
      channel = decodeChannel(url.pathname.slice(BUS_PREFIX.length))
    } catch (error) {
      throw new TargetError(`bad channel in ${JSON.stringify(target)}: ${(error as ChannelError).message}`, {cause: error})
    }
  }

  const fromUrl = url.username || url.password ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined
  url.username = ''
  url.password = ''
  const user = options.user ?? fromUrl ?? options.defaultUser
  return {url, channel, authorization: user === undefined ? undefined : basic(user), display: url.href}
}

/**
 * The same server, credentials and query for channel `<channel>-<index>`:
 * how load tools spread over several channels (`--channels N`).
 */
export function numberedChannel(target: Target, index: number): Target {
  const channel = `${target.channel}-${index}`
  const url = new URL(target.url)
  url.pathname = channelPath(channel)
  const display = new URL(target.display)
  display.pathname = url.pathname
  return {...target, url, channel, display: display.href}
}
