/** RFC 9110's `token` (5.6.2), as a piece of a regular expression: a header field's name, a media type's name, a parameter's name. */
export const HTTP_TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
