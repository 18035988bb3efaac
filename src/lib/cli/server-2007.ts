import {Flags} from '@oclif/core'

/**
 * How the 2007 test-pub and test-sub named the server: -l ADDRESS, -p PORT,
 * -s for SSL (libevmsg's defaults: 127.0.0.1, port 8888, or 4444 with SSL).
 * Kept with their 2007 meaning, so old scripts still run; --url is the way
 * the other commands take.
 */
export const server2007Flags = {
  address: Flags.string({char: 'l', summary: 'Server address, as the 2007 tool took it (default 127.0.0.1).', helpValue: '<address>', exclusive: ['url']}),
  port: Flags.integer({char: 'p', summary: 'Server port, as the 2007 tool took it (default 8888, or 4444 with -s).', helpValue: '<port>', min: 1, max: 65_535, exclusive: ['url']}),
  ssl: Flags.boolean({char: 's', summary: 'HTTPS, as the 2007 tool took it.', exclusive: ['url']}),
}

/** The base URL that -l, -p and -s name, or undefined when none is given. */
export function url2007(flags: {address?: string; port?: number; ssl?: boolean}): string | undefined {
  if (flags.address === undefined && flags.port === undefined && !flags.ssl) return undefined
  const address = flags.address ?? '127.0.0.1'
  const host = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address
  return `${flags.ssl ? 'https' : 'http'}://${host}:${flags.port ?? (flags.ssl ? 4444 : 8888)}`
}
