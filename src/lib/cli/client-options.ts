import {readFile} from 'node:fs/promises'
import type {ClientOptions} from '../client/target.js'
import {reasonOf} from '../util/errors.js'

/** The client options from the shared client flags; reads --cacert. */
export async function clientOptions(flags: {url?: string; user?: string; cacert?: string; insecure?: boolean}): Promise<ClientOptions> {
  let ca: Buffer | undefined
  if (flags.cacert !== undefined) {
    try {
      ca = await readFile(flags.cacert)
    } catch (error) {
      throw new Error(`cannot read --cacert ${flags.cacert}: ${reasonOf(error)}`, {cause: error})
    }
  }

  return {url: flags.url, user: flags.user, ca, insecure: flags.insecure}
}
