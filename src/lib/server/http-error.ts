import {STATUS_CODES, type ServerResponse} from 'node:http'

/** A request that is refused: the status, and one line saying what was wrong. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

/** Error bodies are one line of plain text, for curl users and logs alike. */
export function sendError(res: ServerResponse, status: number, reason: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy()
    return
  }

  const body = Buffer.from(`${reason.replace(/[\r\n]+/g, ' ')}\n`)
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(body.length),
  })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

/** The same one-line error, as raw bytes, for sockets that never became a request (clientError). */
export function rawErrorResponse(status: number, serverHeader: string, reason?: string): string {
  const text = STATUS_CODES[status] ?? 'Error'
  const body = `${reason ?? text.toLowerCase()}\n`
  return (
    `HTTP/1.1 ${status} ${text}\r\nServer: ${serverHeader}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  )
}
