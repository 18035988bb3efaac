import {readFile} from '../util/read-file.js'
import type {ClientOptions} from '../client/target.js'
import {reasonOf} from '../util/errors.js'
import {promptPassword} from './password-prompt.js'

export interface ClientFlagValues {
  url?: string
  user?: string
  cacert?: string
  insecure?: boolean
}

export interface CredentialSources {
  env?: NodeJS.ProcessEnv
  /** Whether a person is there to answer a prompt; default: stdin or stderr is a terminal. */
  interactive?: boolean
  /** How to ask for a password; default promptPassword (on /dev/tty, no echo). */
  prompt?: (question: string) => Promise<string | undefined>
}

/**
 * `user` or `user:pass` completed with a password: its own, else
 * $MSGBUS_PASSWORD, else one asked for on the terminal (when there is a
 * person to ask), else none (the server then says whether it wanted one).
 */
async function withPassword(user: string, sources: CredentialSources): Promise<string> {
  if (user.includes(':')) return user
  const env = sources.env ?? process.env
  if (env.MSGBUS_PASSWORD !== undefined) return `${user}:${env.MSGBUS_PASSWORD}`
  const interactive = sources.interactive ?? Boolean(process.stdin.isTTY || process.stderr.isTTY)
  if (!interactive) return user
  const password = await (sources.prompt ?? promptPassword)(`Password for ${user}: `)
  return password === undefined ? user : `${user}:${password}`
}

/**
 * The client options from the shared client flags: reads --cacert, and the
 * credentials: -u, else the URL's own user:pass@, else $MSGBUS_USER; see
 * withPassword for the password.
 */
export async function clientOptions(flags: ClientFlagValues, sources: CredentialSources = {}): Promise<ClientOptions> {
  let ca: Buffer | undefined
  if (flags.cacert !== undefined) {
    try {
      ca = await readFile(flags.cacert)
    } catch (error) {
      throw new Error(`cannot read --cacert ${flags.cacert}: ${reasonOf(error)}`, {cause: error})
    }
  }

  const fromEnv = (sources.env ?? process.env).MSGBUS_USER || undefined
  return {
    url: flags.url,
    user: flags.user === undefined ? undefined : await withPassword(flags.user, sources),
    defaultUser: fromEnv === undefined || flags.user !== undefined ? undefined : await withPassword(fromEnv, sources),
    ca,
    insecure: flags.insecure,
  }
}
