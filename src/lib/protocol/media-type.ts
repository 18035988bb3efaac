import contentType from 'content-type'

export interface MediaType {
  /** The type as the publisher gave it; it travels with the message unchanged. */
  full: string
  /** `type/subtype`, lower-cased, no parameters: what `?type=` filters match. */
  essence: string
}

/** Parses a Content-Type header value per RFC 9110; undefined when it is not a media type. */
export function parseMediaType(value: string | undefined): MediaType | undefined {
  if (value === undefined) return undefined
  const full = value.trim()
  try {
    return {full, essence: contentType.parse(full).type}
  } catch {
    return undefined
  }
}
