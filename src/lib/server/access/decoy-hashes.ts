import {createHash, createHmac} from 'node:crypto'
import {hashKind, type PasswordHash} from './password-hash.js'

/**
 * The hash a user name that is not in the ACL is verified against, so that
 * it answers in the time a real user's wrong password takes.
 *
 * One hash of each kind (scheme and cost, hashKind) the ACL's users have.
 * When there are several kinds, each unknown name gets one of them, chosen by
 * an HMAC of the name, weighted by how many users have each kind: an unknown
 * name behaves like a real user of some kind, and always the same one. With
 * one kind for all unknown names, a name that answers in another kind's time
 * would be a real user.
 *
 * The HMAC key is a digest of the ACL file's text: the same across restarts,
 * so a name does not change kinds between them, and unknown to clients, as
 * the file holds salted hashes. (A change to the file may move an unknown
 * name to another kind.)
 */
export class DecoyHashes {
  private readonly kinds: Array<{hash: PasswordHash; users: number}>
  private readonly users: number
  private readonly key: Buffer

  constructor(hashes: PasswordHash[], fileText: string) {
    const byKind = new Map<string, {hash: PasswordHash; users: number}>()
    for (const hash of hashes) {
      const kind = hashKind(hash)
      const known = byKind.get(kind)
      if (known) known.users++
      else byKind.set(kind, {hash, users: 1})
    }

    this.kinds = [...byKind.values()]
    this.users = hashes.length
    this.key = createHash('sha256').update('msgbus decoy hashes\n').update(fileText).digest()
  }

  /** The decoy for `user`; undefined when the ACL has no users with passwords. */
  for(user: string): PasswordHash | undefined {
    if (this.kinds.length <= 1) return this.kinds[0]?.hash
    // 48 bits of the HMAC: the bias of the modulo is below 2^-30 for any number of users.
    let pick = createHmac('sha256', this.key).update(user).digest().readUIntBE(0, 6) % this.users
    for (const {hash, users} of this.kinds) {
      if (pick < users) return hash
      pick -= users
    }

    return undefined
  }
}
