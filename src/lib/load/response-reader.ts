/**
 * Reads HTTP/1.1 responses off a raw socket: the status and, for the load
 * publisher, the body skipped by its Content-Length. Small on purpose: it
 * serves connections that only ever carry responses of msgbus's own shape.
 */
export interface ResponseHead {
  status: number
  headers: Record<string, string>
}

export class ResponseReader {
  private pending: Buffer | undefined

  constructor(private readonly onResponse: (head: ResponseHead, body: string) => void) {}

  /** What arrives may be a view into a reused read buffer: what waits for more is copied. */
  private keep(data: Buffer): void {
    this.pending = Buffer.from(data)
  }

  write(chunk: Buffer): void {
    let data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk
    this.pending = undefined
    while (data.length > 0) {
      const end = data.indexOf('\r\n\r\n')
      if (end < 0) {
        if (data.length > 64 * 1024) throw new Error('response head too large')
        this.keep(data)
        return
      }

      const head = parseHead(data.toString('latin1', 0, end))
      const length = Number(head.headers['content-length'] ?? 0)
      if (data.length < end + 4 + length) {
        this.keep(data)
        return
      }

      this.onResponse(head, data.toString('utf8', end + 4, end + 4 + length))
      data = data.subarray(end + 4 + length)
    }
  }
}

export function parseHead(text: string): ResponseHead {
  const lines = text.split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1] ?? 0)
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }

  return {status, headers}
}
