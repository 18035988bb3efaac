import {readFile as readFileWithCallback} from 'node:fs'
import {promisify} from 'node:util'

/**
 * fs/promises' readFile without loading node:fs/promises, which brings
 * readline and the fs watchers with it: ~2 ms of every start of `send` and
 * `dump`, which read a file at most.
 */
export const readFile = promisify(readFileWithCallback)
