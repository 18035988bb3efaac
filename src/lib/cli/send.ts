import {readFile} from '../util/read-file.js'
import type {PublisherStats} from '../client/pipelined-publisher.js'
import type {FilePart, Published} from '../client/publish.js'
import type {ClientOptions} from '../client/target.js'
import {formatDuration} from '../util/duration.js'
import {reasonOf} from '../util/errors.js'
import {formatSize} from '../util/size.js'
import {readLines} from './lines.js'

export interface SendOptions extends ClientOptions {
  target: string
  files: string[]
  /** Texts given with -m, one message each. */
  messages: string[]
  type?: string
  lines: boolean
  /** --lines: bytes of lines held while the server cannot take them; past it, stdin is not read. */
  bufferBytes: number
  /** How long to keep retrying failures that can heal; default: forever with --lines, not at all otherwise. */
  retryForMs?: number
  /** Aborted at SIGINT or SIGTERM: --lines stops reading, sends what it holds for a few seconds more, and reports. */
  signal?: AbortSignal
  /** Called with each message's answer, in order (see Published: a 2007 server names no id). */
  onPublished?: (result: Published) => void
  /** One line for stderr: a failure on the way, the final report. */
  warn: (line: string) => void
  /** One line for stderr with -v: each retry. */
  status?: (line: string) => void
  stdin: NodeJS.ReadableStream
}

/** How long an interrupted `send --lines` goes on sending what it holds while the server answers. */
export const INTERRUPT_GRACE_MS = 5000

async function readAll(input: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
  return Buffer.concat(chunks)
}

/** A word as a shell would need it typed. */
function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`
}

/** Why a FILE cannot be read; a missing one that looks like words rather than a path is likely text meant for -m. */
function unreadable(file: string, error: unknown): Error {
  const code = (error as {code?: string}).code
  if (code === 'ENOENT' && !/[/.]/.test(file)) {
    const quoted = shellQuote(file)
    return new Error(`no such file ${quoted} (to send the text ${quoted}, use -m ${quoted})`, {cause: error})
  }

  return new Error(`cannot read ${file}: ${reasonOf(error, {ENOENT: 'no such file', EISDIR: 'is a folder'})}`, {cause: error})
}

/** Each file's bytes and type, all read before anything is sent, so a missing file sends nothing. */
async function readFiles(files: string[], type: string | undefined): Promise<FilePart[]> {
  const {bodyType} = await import('./body-type.js')
  return Promise.all(
    files.map(async (file) => {
      let body: Buffer
      try {
        body = await readFile(file)
      } catch (error) {
        throw unreadable(file, error)
      }

      return {body, type: type ?? (await bodyType(body, file)), name: file.split('/').pop()}
    }),
  )
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`
}

/** The closing line of `send --lines`. */
export function linesReport(stats: PublisherStats): string {
  return `${plural(stats.sent, 'line')} sent, ${stats.retried} retried, ${stats.lost} lost`
}

/**
 * `send --lines`: each line of stdin a message, over one pipelined
 * connection that rides out a server restart (see PipelinedPublisher).
 * Reports on stderr when anything went wrong or at an interruption; false
 * when a line was lost.
 */
async function sendLines(options: SendOptions): Promise<boolean> {
  const {PipelinedPublisher} = await import('../client/pipelined-publisher.js')
  const {warn, status} = options
  const publisher = new PipelinedPublisher(options.target, {
    ...options,
    // The interruption is handled below: it ends the reading, not the sending.
    signal: undefined,
    onPublished: undefined,
    retryForMs: options.retryForMs ?? Number.POSITIVE_INFINITY,
    maxBufferBytes: options.bufferBytes,
  })
  let troubled = false
  if (options.onPublished) publisher.on('published', options.onPublished)
  publisher.on('refused', ({index, error}) => warn(`line ${index} refused, lost: ${error.message}`))
  publisher.on('disconnect', ({error}) => {
    troubled = true
    warn(`${error.message}: retrying, keeping up to ${formatSize(options.bufferBytes)} of lines meanwhile`)
  })
  publisher.on('retry', ({attempt, delayMs}) => status?.(`retrying in ${formatDuration(delayMs)} (attempt ${attempt + 1})`))
  publisher.on('connect', ({downMs}) => warn(`reconnected after ${formatDuration(downMs)}`))
  publisher.on('full', () => warn(`buffer full (${formatSize(options.bufferBytes)}): not reading stdin until the server takes lines again`))

  let interrupted = false
  const stdin = options.stdin as NodeJS.ReadableStream & {destroy?: () => void}
  const interrupt = (): void => {
    interrupted = true
    // Ends the reading of stdin (the pipe's writer, tail -f, gets EPIPE), not the sending of what was read already.
    stdin.destroy?.()
    publisher.giveUpAfter(INTERRUPT_GRACE_MS)
  }

  // A stop for good (401, an unknown host) ends the reading too, even while stdin is quiet.
  publisher.on('stop', () => stdin.destroy?.())
  if (options.signal?.aborted) interrupt()
  else options.signal?.addEventListener('abort', interrupt, {once: true})
  // Lines taken from stdin that the publisher never held (it had stopped): lost as surely as those it held.
  let dropped = 0
  let cut = 0
  try {
    for await (const line of readLines(stdin as AsyncIterable<Buffer>, {onCut: (bytes) => (cut = bytes)})) {
      if (publisher.error) dropped++
      // A send that fails after it took the line: the stop counted it with what was held.
      else await publisher.send(line).catch(() => {})
    }
  } catch (error) {
    // A stop (the publisher's failure, reported below) or an interruption ends the reading.
    if (!publisher.error && !interrupted) throw error
  } finally {
    options.signal?.removeEventListener('abort', interrupt)
  }

  try {
    await publisher.close()
  } catch {
    // publisher.error, below.
  }

  if (publisher.error) warn(publisher.error.message)
  if (cut > 0) {
    warn(`stdin ended inside a line: its first ${plural(cut, 'byte')} not sent`)
    dropped++
  }

  const stats = {...publisher.stats, lost: publisher.stats.lost + dropped}
  if (troubled || interrupted || stats.lost > 0 || stats.retried > 0 || status) warn(linesReport(stats))
  return stats.lost === 0 && !publisher.error
}

/**
 * `msgbus send`: stdin, a file or several (one form request), texts given
 * with -m, or stdin line by line (sendLines). The client library (and
 * undici with it) is loaded only here, not at CLI start-up. Resolves with
 * whether everything was delivered.
 */
export async function send(options: SendOptions): Promise<boolean> {
  if (options.lines) return sendLines(options)
  const {publish, publishAll, DEFAULT_TYPE} = await import('../client/publish.js')
  const {withRetry} = await import('../client/retry.js')
  const {withFileName} = await import('../protocol/media-type.js')
  const report = options.onPublished ?? (() => {})
  const retrying = <T>(attempt: () => Promise<T>): Promise<T> =>
    withRetry(attempt, {
      retryForMs: options.retryForMs ?? 0,
      signal: options.signal,
      onRetry: ({attempt: count, delayMs, error}) => options.status?.(`${error.message}: attempt ${count + 1} in ${formatDuration(delayMs)}`),
    })

  let parts: FilePart[]
  if (options.messages.length > 0) {
    parts = options.messages.map((text) => ({body: Buffer.from(text), type: options.type ?? DEFAULT_TYPE}))
  } else {
    const files = options.files.filter((file) => file !== '-')
    if (files.length === 0 || options.files.length > files.length) {
      if (options.files.length > 1) throw new Error('stdin (-) cannot be combined with files')
      const body = await readAll(options.stdin)
      const {bodyType} = await import('./body-type.js')
      const type = options.type ?? (await bodyType(body))
      report(await retrying(() => publish(options.target, body, {...options, type})))
      return true
    }

    parts = await readFiles(files, options.type)
  }

  if (parts.length === 1) {
    // Named as a form's file parts are named by the server, so one file and several arrive alike.
    const [{body, type, name}] = parts
    report(await retrying(() => publish(options.target, body, {...options, type: name === undefined ? type : withFileName(type, name)})))
    return true
  }

  for (const result of await retrying(() => publishAll(options.target, parts, options))) report(result)
  return true
}
