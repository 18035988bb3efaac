import contentType from 'content-type'
import {HTTP_TOKEN} from './http-token.js'

export interface MediaType {
  /** The type as the publisher gave it; it travels with the message unchanged. */
  full: string
  /** `type/subtype`, lower-cased, no parameters: what `?type=` filters match. */
  essence: string
}

/**
 * RFC 6838 (4.2): a type or subtype name is at most 127 characters. Past
 * that it is not a media type, and no filter is ever asked to match it.
 */
export const MAX_MEDIA_NAME_CHARS = 127

const QUOTED = '"(?:[\\u000b\\u0020\\u0021\\u0023-\\u005b\\u005d-\\u007e\\u0080-\\u00ff]|\\\\[\\u000b\\u0020-\\u00ff])*"'

/**
 * What content-type's `parse` accepts (its TYPE_REGEXP, then PARAM_REGEXP
 * from the first `;` to the end), as one test that builds nothing: the
 * package's parse made an object and a parameter map a publish, and took
 * about 1 µs for test-pub's types (its marker is a parameter). No two parts
 * can match the same characters, so it runs in linear time on any input.
 * test/properties.test.ts holds it to content-type's verdict and essence.
 */
const MEDIA_TYPE = new RegExp(`^\\s*(${HTTP_TOKEN}/${HTTP_TOKEN})\\s*(?:; *${HTTP_TOKEN} *= *(?:${QUOTED}|${HTTP_TOKEN}) *)*$`)

/**
 * Parses a Content-Type header value per RFC 9110 and RFC 6838: the media
 * type, or when it is not one, why (one line: the value itself, or what is
 * wrong with it).
 */
export function mediaTypeOrReason(value: string): MediaType | string {
  const full = value.trim()
  const match = MEDIA_TYPE.exec(full)
  if (match === null) return JSON.stringify(value)
  const essence = (match[1] as string).toLowerCase()

  const slash = essence.indexOf('/')
  if (slash > MAX_MEDIA_NAME_CHARS || essence.length - slash - 1 > MAX_MEDIA_NAME_CHARS) {
    return `a type or subtype name has at most ${MAX_MEDIA_NAME_CHARS} characters (RFC 6838), not ${Math.max(slash, essence.length - slash - 1)}`
  }

  return {full, essence}
}

/** Parses a Content-Type header value per RFC 9110 and RFC 6838; undefined when it is not a media type. */
export function parseMediaType(value: string | undefined): MediaType | undefined {
  if (value === undefined) return undefined
  const result = mediaTypeOrReason(value)
  return typeof result === 'string' ? undefined : result
}

/** RFC 8187 attr-chars that encodeURIComponent leaves alone but a parameter value may not hold bare. */
const NOT_ATTR_CHARS = /['()*]/g

/**
 * A file's name carried in its message's media type, as the `name`
 * parameter (RFC 2045's convention, which mail and browsers' downloads
 * read): `text/plain; name="notes.txt"`, quoted as RFC 9110 says when the
 * name is printable ASCII, else RFC 2231's `name*=UTF-8''caf%C3%A9.txt`, so
 * the type stays ASCII in every header and JSON it passes through. Added
 * only when the type names no file yet (and not to what is not a media
 * type); control characters are dropped.
 */
export function withFileName(type: string, fileName: string): string {
  // Control characters dropped; a lone surrogate (which encodeURIComponent refuses) becomes U+FFFD.
  const name = fileName
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u001f\u007f\u0080-\u009f]/g, '')
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
  if (name === '') return type
  let parameters: Record<string, string>
  try {
    parameters = contentType.parse(type).parameters
  } catch {
    return type
  }

  if (['name', 'filename', 'name*', 'filename*'].some((key) => parameters[key] !== undefined)) return type
  if (/^[\x20-\x7e]*$/.test(name)) return `${type.trim()}; name="${name.replace(/["\\]/g, '\\$&')}"`
  const encoded = encodeURIComponent(name).replace(NOT_ATTR_CHARS, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`)
  return `${type.trim()}; name*=UTF-8''${encoded}`
}
