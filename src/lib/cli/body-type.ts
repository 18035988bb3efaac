import {isUtf8} from 'node:buffer'
import {DEFAULT_TYPE} from '../client/publish.js'

/**
 * Whether `named` (from a file's extension) is a kind of `sniffed` by its
 * structured syntax suffix (RFC 6839): an SVG file's bytes say XML, its
 * name says image/svg+xml, and the name is the better answer; an EPUB's
 * bytes may say ZIP.
 */
function refines(named: string, sniffed: string): boolean {
  const suffix = /\+([\w.-]+)$/.exec(named)?.[1]
  return suffix !== undefined && sniffed === `application/${suffix}`
}

/**
 * The type of a body `msgbus send` publishes without -t: what its first
 * bytes say (file-type's magic numbers) when they say anything; else what
 * the file's extension says; else text/plain; charset=utf-8 when it is
 * valid UTF-8 without NUL bytes (which text does not have); else
 * application/octet-stream. file-type is loaded here only, when needed.
 */
export async function bodyType(body: Buffer, fileName?: string): Promise<string> {
  // The core: the same detection for a buffer, without file-type's stream and file readers (node:stream/web, strtok3's).
  const {fileTypeFromBuffer} = await import('file-type/core')
  const sniffed = body.length > 0 ? (await fileTypeFromBuffer(body))?.mime : undefined
  let named: string | undefined
  if (fileName !== undefined) {
    const {default: mime} = await import('mime-types')
    named = mime.lookup(fileName) || undefined
  }

  if (sniffed !== undefined && !(named !== undefined && refines(named, sniffed))) return sniffed
  if (named !== undefined) return named
  return isUtf8(body) && !body.includes(0) ? DEFAULT_TYPE : 'application/octet-stream'
}
