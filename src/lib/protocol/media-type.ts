import contentType from 'content-type'

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

/**
 * Parses a Content-Type header value per RFC 9110 and RFC 6838: the media
 * type, or when it is not one, why (one line: the value itself, or what is
 * wrong with it).
 */
export function mediaTypeOrReason(value: string): MediaType | string {
  const full = value.trim()
  let essence: string
  try {
    essence = contentType.parse(full).type
  } catch {
    return JSON.stringify(value)
  }

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

/**
 * A file's name carried in its message's media type, as the `name`
 * parameter (RFC 2045's convention, which mail and browsers' downloads
 * read): `text/plain; name="notes.txt"`. Added only when the type names no
 * file yet (and not to what is not a media type); control characters are
 * dropped, `"` and `\` escaped (RFC 9110 quoted-string), so the result
 * parses as the type it was.
 */
export function withFileName(type: string, fileName: string): string {
  // eslint-disable-next-line no-control-regex
  const name = fileName.replace(/[\u0000-\u001f\u007f]/g, '')
  if (name === '') return type
  let parameters: Record<string, string>
  try {
    parameters = contentType.parse(type).parameters
  } catch {
    return type
  }

  if (parameters.name !== undefined || parameters.filename !== undefined) return type
  return `${type.trim()}; name="${name.replace(/["\\]/g, '\\$&')}"`
}
