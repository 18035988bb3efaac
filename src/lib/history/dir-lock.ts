/**
 * One server to a history folder: two writing to the same segments would
 * interleave their records and each cut the other's "torn" tails. The lock is
 * a file, `lock`, holding the pid of its holder; a lock left by a process that
 * no longer runs (killed, a crash, a power loss) is taken over.
 */
import {link, readFile, unlink, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {MsgbusError} from '../util/errors.js'
import {historyFailure} from './failure.js'

/** The folders this process holds: its own pid in a lock file says nothing about which of its stores wrote it. */
const held = new Set<string>()

/**
 * Whether the process `pid` runs. A lock with this process's own pid, on a
 * folder it does not hold, is a previous process's (a container's pid 1); a
 * zombie (killed, its parent yet to reap it) holds nothing.
 */
async function running(pid: number): Promise<boolean> {
  if (pid === process.pid) return false
  try {
    process.kill(pid, 0)
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }

  const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => '')
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
}

async function holderOf(path: string): Promise<number | 'none' | 'unreadable'> {
  let text: string
  try {
    text = await readFile(path, 'latin1')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'none'
    throw error
  }

  const pid = Number(text.trim())
  return Number.isInteger(pid) && pid > 0 ? pid : 'unreadable'
}

export class DirLock {
  private constructor(
    private readonly key: string,
    private readonly path: string,
  ) {}

  /**
   * Takes `dir`'s lock, or rejects (ERR_MSGBUS_HISTORY_FAILED) when a running
   * process holds it. `onStale` hears of a lock taken over.
   */
  static async take(dir: string, onStale: (holder: string) => void): Promise<DirLock> {
    const key = resolve(dir)
    if (held.has(key)) throw new MsgbusError('ERR_MSGBUS_HISTORY_FAILED', `history dir ${dir} is in use by process ${process.pid} (this one)`)
    held.add(key)
    const path = join(dir, 'lock')
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        if (await DirLock.create(dir, path)) return new DirLock(key, path)
        const holder = await holderOf(path)
        if (holder === 'none') continue
        if (typeof holder === 'number' && (await running(holder))) {
          throw new MsgbusError('ERR_MSGBUS_HISTORY_FAILED', `history dir ${dir} is in use by process ${holder}`)
        }

        onStale(typeof holder === 'number' ? `process ${holder}, which no longer runs` : 'a lock file without a pid')
        await unlink(path).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error
        })
      }

      throw new MsgbusError('ERR_MSGBUS_HISTORY_FAILED', `history dir ${dir}: cannot take the lock: it keeps changing hands`)
    } catch (error) {
      held.delete(key)
      throw historyFailure(dir, 'take the lock', error)
    }
  }

  /**
   * Makes the lock whole or not at all: written under a name of its own,
   * then linked to `lock` (which fails if `lock` exists), so no process ever
   * reads a lock without its pid.
   */
  private static async create(dir: string, path: string): Promise<boolean> {
    const draft = join(dir, `lock.${process.pid}.tmp`)
    await writeFile(draft, `${process.pid}\n`, {mode: 0o600})
    try {
      await link(draft, path)
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw error
    } finally {
      await unlink(draft).catch(() => {})
    }
  }

  async release(): Promise<void> {
    // Only our own: should another process have taken the folder over meanwhile, its lock stays.
    if ((await holderOf(this.path).catch(() => 'unreadable')) === process.pid) await unlink(this.path).catch(() => {})
    held.delete(this.key)
  }
}
