import {readFile} from 'node:fs/promises'
import type {Published} from '../client/publish.js'
import type {ClientOptions} from '../client/target.js'
import {reasonOf} from '../util/errors.js'
import {readLines} from './lines.js'

export interface SendOptions extends ClientOptions {
  target: string
  files: string[]
  type?: string
  lines: boolean
  /** Called with each message's answer, in order (see Published: a 2007 server names no id). */
  onPublished?: (result: Published) => void
  stdin: NodeJS.ReadableStream
}

async function readAll(input: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
  return Buffer.concat(chunks)
}

/** Each file's bytes and type, all read before anything is sent, so a missing file sends nothing. */
async function readFiles(files: string[], type: string | undefined) {
  const {default: mime} = await import('mime-types')
  return Promise.all(
    files.map(async (file) => {
      let body: Buffer
      try {
        body = await readFile(file)
      } catch (error) {
        throw new Error(`cannot read ${file}: ${reasonOf(error, {ENOENT: 'no such file', EISDIR: 'is a folder'})}`, {cause: error})
      }

      return {body, type: type ?? (mime.lookup(file) || 'application/octet-stream'), name: file.split('/').pop()}
    }),
  )
}

/**
 * `msgbus send`: stdin, a file or several (one form request), or stdin line
 * by line over one pipelined keep-alive connection. The client library (and
 * undici with it) is loaded only here, not at CLI start-up.
 */
export async function send(options: SendOptions): Promise<number> {
  const {publish, publishAll, PipelinedPublisher} = await import('../client/publish.js')
  const {withFileName} = await import('../protocol/media-type.js')
  const report = options.onPublished ?? (() => {})
  if (options.lines) {
    const publisher = new PipelinedPublisher(options.target, {...options, onPublished: report})
    try {
      for await (const line of readLines(options.stdin as AsyncIterable<Buffer>)) {
        await publisher.send(line)
      }
    } finally {
      await publisher.close()
    }

    return publisher.acknowledged
  }

  const files = options.files.filter((file) => file !== '-')
  if (files.length === 0 || options.files.length > files.length) {
    if (options.files.length > 1) throw new Error('stdin (-) cannot be combined with files')
    report(await publish(options.target, await readAll(options.stdin), options))
    return 1
  }

  const parts = await readFiles(files, options.type)
  if (parts.length === 1) {
    // Named as a form's file parts are named by the server, so one file and several arrive alike.
    report(await publish(options.target, parts[0].body, {...options, type: withFileName(parts[0].type, parts[0].name ?? '')}))
    return 1
  }

  for (const result of await publishAll(options.target, parts, options)) report(result)
  return parts.length
}
