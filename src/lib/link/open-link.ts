import type {BusLink} from '../bus/link.js'
import type {Logger} from '../server/ops/log.js'
import {MsgbusError} from '../util/errors.js'

/** What a link made from `--bus` may need besides its URL. */
export interface LinkContext {
  logger: Logger
}

/**
 * The link `--bus URL` names, by its scheme. Each kind is imported only
 * here, when named (its client library with it), so that a server alone, and
 * every other command, never loads them. The link is opened by the server at
 * start (BusServerOptions.link).
 */
export async function openLinkFor(url: string, context: LinkContext): Promise<BusLink> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase()
  switch (scheme) {
    case 'nats':
      return new (await import('./nats-link.js')).NatsLink(url, {logger: context.logger})
    default:
      throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--bus ${url}: not a bus URL (nats://HOST:PORT)`)
  }
}
