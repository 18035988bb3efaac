import {execFileSync} from 'node:child_process'

export interface UserEntry {
  name: string
  uid: number
  gid: number
}

/**
 * Looks a user (name or numeric id) up before anything is bound, so a typo
 * fails at once instead of after the ports are taken.
 */
export function resolveUser(user: string): UserEntry {
  if (typeof process.getuid !== 'function' || typeof process.setuid !== 'function') {
    throw new Error('switching user is not supported on this platform')
  }

  if (process.getuid() !== 0) throw new Error(`--user ${user} needs the server to be started as root`)
  let entry: string
  try {
    entry = execFileSync('getent', ['passwd', user], {encoding: 'utf8'}).split('\n')[0]
  } catch {
    throw new Error(`no such user: ${user}`)
  }

  const [name, , uid, gid] = entry.split(':')
  return {name, uid: Number(uid), gid: Number(gid)}
}

/**
 * Switches the process to the user and that user's groups, after the ports
 * are bound, so a server started as root can take ports 80 and 443 and then
 * run unprivileged.
 */
export function dropPrivileges(user: UserEntry): void {
  const withGroups = process as NodeJS.Process & {initgroups?: (user: string, group: number) => void}
  withGroups.initgroups?.(user.name, user.gid)
  process.setgid!(user.gid)
  process.setuid!(user.uid)
}
