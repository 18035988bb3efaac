import {formatDuration} from '../../util/duration.js'
import {sizeAsTyped} from '../../util/size.js'
import type {ResolvedOptions} from '../options.js'
import type {LogFields} from './log.js'

/** What start() knows only once it has opened them: the ACL read, and the connection cap worked out. */
export interface ProtectionFacts {
  /** The ACL's file and users (`3 users and anonymous access`), with `--acl`. */
  acl?: {file: string; users: string}
  /** Most connections at once (0: no cap). */
  connections: number
}

const limit = (n: number) => (n > 0 ? String(n) : 'off')

/**
 * The start-up line that says which protections are on, so an operator sees
 * at a glance what a server that is reachable from elsewhere refuses: who
 * may log in, which pages may use it, and the limits on clients and bodies.
 * `off` is a limit that is not set.
 */
export function describeProtections(options: ResolvedOptions, facts: ProtectionFacts): {detail: string; fields: LogFields} {
  const auth = facts.acl ? `acl(${facts.acl.users})` : options.secret !== undefined ? 'secret' : 'none'
  const cors = options.cors?.flatMap((origin) => origin.split(',')).map((origin) => origin.trim()).filter(Boolean) ?? []
  const history = options.history > 0 ? `${options.history}/${sizeAsTyped(options.historyBytes)}/${options.historyAge > 0 ? formatDuration(options.historyAge * 1000).replace(/ /g, '') : 'forever'}` : 'off'
  const fields = {
    auth: facts.acl ? 'acl' : options.secret !== undefined ? 'secret' : 'none',
    aclUsers: facts.acl?.users,
    cors,
    rateLimit: options.rateLimit,
    maxLoginFailures: options.maxLoginFailures,
    maxConnections: facts.connections,
    maxConnectionsPerIp: options.maxConnectionsPerIp,
    maxSubscribers: options.maxSubscribers,
    maxChannels: options.maxChannels,
    maxMessageSize: options.maxMessageSize,
    maxRequestSize: options.maxRequestSize,
    maxBodyMemory: options.maxBodyMemory,
    history: options.history,
    historyBytes: options.historyBytes,
    historyAge: options.historyAge,
    historyDir: options.historyDir,
  }
  const detail = [
    `auth=${auth}`,
    `cors=${cors.length > 0 ? cors.join(',') : 'off'}`,
    `rate-limit=${options.rateLimit > 0 ? `${options.rateLimit}/s` : 'off'}`,
    `login-failures=${limit(options.maxLoginFailures)}`,
    `connections=${limit(facts.connections)}`,
    `per-ip=${limit(options.maxConnectionsPerIp)}`,
    `subscribers=${limit(options.maxSubscribers)}`,
    `channels=${limit(options.maxChannels)}`,
    `message=${sizeAsTyped(options.maxMessageSize)}`,
    `form=${sizeAsTyped(options.maxRequestSize)}`,
    `body-memory=${options.maxBodyMemory > 0 ? sizeAsTyped(options.maxBodyMemory) : 'off'}`,
    `history=${history}${options.historyDir === undefined ? '' : ` on ${options.historyDir}`}`,
  ].join(' ')
  return {detail, fields}
}
