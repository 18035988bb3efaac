import {readFileSync} from 'node:fs'
import {arch, platform} from 'node:os'

interface PackageJson {
  name: string
  version?: string
  oclif?: {additionalVersionFlags?: string[]}
}

/**
 * `msgbus --version` without oclif (bin/run.js, through
 * dist/cli/fast---version.cjs): the line oclif prints, its Config's
 * userAgent, `<name>/<version> <platform>-<arch> node-<version>`, where
 * the platform is `wsl` under WSL as oclif has it (is-wsl). Resolves
 * with the exit status, or undefined when the command line is oclif's (a
 * package.json naming other version flags).
 */
export async function run(): Promise<number | undefined> {
  const pjson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as PackageJson
  if ((pjson.oclif?.additionalVersionFlags ?? []).length > 0) return undefined
  // wsl-utils (oclif's) re-exports is-wsl's answer, and loads child_process and fs/promises with it: 13 ms of a 120 ms start.
  const isWsl = platform() === 'linux' && (await import('is-wsl')).default
  const machine = arch() === 'ia32' ? 'x86' : arch()
  process.stdout.write(`${pjson.name}/${pjson.version || '0.0.0'} ${isWsl ? 'wsl' : platform()}-${machine} node-${process.version}\n`)
  return 0
}

/** Nothing is loaded on demand but is-wsl, which run() loads. */
export async function warm(): Promise<void> {}
