import {execFileSync} from 'node:child_process'

/**
 * Switches the process to another user (name or numeric id) and that user's
 * groups, after the ports are bound, so a server started as root can take
 * ports 80 and 443 and then run unprivileged.
 */
export function dropPrivileges(user: string): {uid: number; gid: number} {
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
  const withGroups = process as NodeJS.Process & {initgroups?: (user: string, group: number) => void}
  withGroups.initgroups?.(name, Number(gid))
  process.setgid!(Number(gid))
  process.setuid(Number(uid))
  return {uid: Number(uid), gid: Number(gid)}
}
