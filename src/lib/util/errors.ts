/**
 * The library's errors, and the one-line reasons it gives for Node's.
 *
 * Every error msgbus makes for its users is a MsgbusError (ChannelError,
 * ClientError, AclError... are its subclasses) with a stable `code`,
 * `ERR_MSGBUS_...`, in the style of Node's own `ERR_...` codes: match on the
 * code (or the class), not on the message, whose wording may change. An
 * error made because of another carries that one as its `cause`.
 */

/** Every code a MsgbusError may have; README's "As a library" lists what each means. */
export const MSGBUS_ERROR_CODES = [
  // Protocol: channel names, pattern lists, stream parsing, sizes.
  'ERR_MSGBUS_CHANNEL_INVALID',
  'ERR_MSGBUS_PATTERN_LIST_INVALID',
  'ERR_MSGBUS_MULTIPART_INVALID',
  'ERR_MSGBUS_CHUNKED_INVALID',
  'ERR_MSGBUS_SIZE_INVALID',
  'ERR_MSGBUS_DURATION_INVALID',
  'ERR_MSGBUS_POSITION_INVALID',
  // Client.
  'ERR_MSGBUS_TARGET_INVALID',
  'ERR_MSGBUS_REQUEST_FAILED',
  'ERR_MSGBUS_HTTP_STATUS',
  'ERR_MSGBUS_RESPONSE_INVALID',
  // Server: starting, reloading, and what stays inside it.
  'ERR_MSGBUS_OPTION_INVALID',
  'ERR_MSGBUS_PORT_IN_USE',
  'ERR_MSGBUS_LISTEN_FAILED',
  'ERR_MSGBUS_TLS_INVALID',
  'ERR_MSGBUS_DOCROOT_INVALID',
  'ERR_MSGBUS_ACL_INVALID',
  'ERR_MSGBUS_ACL_UNREADABLE',
  'ERR_MSGBUS_HASH_INVALID',
  'ERR_MSGBUS_SERVER_STATE',
  'ERR_MSGBUS_REQUEST_REFUSED',
  'ERR_MSGBUS_HASH_QUEUE_FULL',
  'ERR_MSGBUS_HISTORY_FAILED',
  'ERR_MSGBUS_LINK_DOWN',
] as const

export type MsgbusErrorCode = (typeof MSGBUS_ERROR_CODES)[number]

/** An error of msgbus's own: a one-line message, a stable `code`, and the error behind it (`cause`) if any. */
export class MsgbusError extends Error {
  constructor(
    readonly code: MsgbusErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

/** A MsgbusError class whose errors all have the code C. */
export interface CodedErrorClass<C extends MsgbusErrorCode> {
  new (message: string, options?: ErrorOptions): MsgbusError & {readonly code: C}
}

/**
 * A base for a MsgbusError class whose errors all have one code:
 * `class ChannelError extends codedError('ERR_MSGBUS_CHANNEL_INVALID') {}`.
 */
export function codedError<C extends MsgbusErrorCode>(code: C): CodedErrorClass<C> {
  return class extends MsgbusError {
    declare readonly code: C
    constructor(message: string, options?: ErrorOptions) {
      super(code, message, options)
    }
  }
}

/** The code Node gives its system errors (ENOENT, EACCES, EADDRINUSE), if `error` has one. */
function codeOf(error: unknown): string | undefined {
  const code = (error as {code?: unknown} | null | undefined)?.code
  return typeof code === 'string' ? code : undefined
}

/** The word for `error`'s code in `words`, if any. */
function wordFor(error: unknown, words: Readonly<Record<string, string>>): string | undefined {
  const code = codeOf(error)
  return code !== undefined && Object.hasOwn(words, code) ? words[code] : undefined
}

/**
 * An error's message (String(error) for a thrown value that is not an
 * Error), or, where `words` names its code, that word:
 * `messageOf(error, {ENOENT: 'no such folder'})`.
 */
export function messageOf(error: unknown, words: Readonly<Record<string, string>> = {}): string {
  return wordFor(error, words) ?? (error instanceof Error ? error.message : String(error))
}

/**
 * Why a file or socket operation failed, for a one-line message: the code
 * of Node's system error (`ENOENT`, `EACCES`, `ECONNREFUSED`), else the
 * message; `words` names some codes in words (`{EISDIR: 'is a folder'}`).
 * Meant for Node's errors: a MsgbusError would give its code.
 */
export function reasonOf(error: unknown, words: Readonly<Record<string, string>> = {}): string {
  return wordFor(error, words) ?? codeOf(error) ?? messageOf(error)
}
