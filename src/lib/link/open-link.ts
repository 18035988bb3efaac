import type {BusLink} from '../bus/link.js'
import type {Logger} from '../server/ops/logger.js'
import {MsgbusError} from '../util/errors.js'

/** What a link may need from the server that opens it. */
export interface LinkContext {
  logger: Logger
}

/**
 * The link `--bus URL` names, by the URL's scheme. Each adapter is loaded
 * by a dynamic import (it loads its client library, ioredis or @nats-io,
 * only then): a server without `--bus`, and every other command, starts
 * without them. The server opens the link (`open()`) as it starts.
 */
export async function openLinkFor(url: string, context: LinkContext): Promise<BusLink> {
  const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(url)?.[1].toLowerCase()
  switch (scheme) {
    case 'redis:': {
      const [{RedisLink}, {parseRedisUrl}] = await Promise.all([import('./redis-link.js'), import('./redis-url.js')])
      return new RedisLink(parseRedisUrl(url), {logger: context.logger})
    }

    case 'nats:':
      return new (await import('./nats-link.js')).NatsLink(url, {logger: context.logger})

    default:
      throw new MsgbusError(
        'ERR_MSGBUS_OPTION_INVALID',
        `--bus ${url.replace(/\/\/[^@/]*@/, '//***@')}: not a bus URL this msgbus knows (redis://HOST:PORT or nats://HOST:PORT)`,
      )
  }
}
