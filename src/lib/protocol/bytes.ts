/** Bytes the stream readers look for: the multipart parser's and the load tools'. */
export const CR = 0x0d
export const LF = 0x0a
export const DASH = 0x2d
