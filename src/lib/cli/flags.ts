import {Flags} from '@oclif/core'
import type {Position} from '../protocol/position.js'
import {FLAG_PARSERS} from './flag-parsers.js'

/** A size flag: bytes, or a number with k, M or G (`64k`, `8MiB`). */
export const sizeFlag = Flags.custom<number>({
  parse: FLAG_PARSERS.size,
  helpValue: '<size>',
})

/** A duration (`90s`, `10m`, `1h`; a bare number is seconds), as seconds. */
export const durationFlag = Flags.custom<number>({
  parse: FLAG_PARSERS.duration,
  helpValue: '<duration>',
})

/** Where a subscription starts (`--since`): a message id, a time, a duration back from now, or `all`; read when the command starts. */
export const positionFlag = Flags.custom<Position>({
  parse: FLAG_PARSERS.position,
  helpValue: '<id|time|duration|all>',
})

/** Flags every client command shares: where the server is, and how to reach it. */
export const clientFlags = {
  url: Flags.string({
    summary: 'Base URL of the server, for channel names (default: $MSGBUS_URL, else http://localhost:8888).',
    helpValue: '<url>',
  }),
  user: Flags.string({
    char: 'u',
    summary: 'Basic auth as user:password, or user and the password from $MSGBUS_PASSWORD or a prompt on the terminal (default: $MSGBUS_USER); the user name becomes the sender.',
    helpValue: '<user[:pass]>',
  }),
  cacert: Flags.string({summary: 'Trust this PEM CA certificate for HTTPS.', helpValue: '<file>'}),
  insecure: Flags.boolean({char: 'k', summary: 'Do not verify the HTTPS certificate.'}),
}
