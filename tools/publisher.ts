/**
 * Publishing as fast as one keep-alive connection allows, for the tests and
 * the benchmark alike: the POSTs pipelined, each 204's Msgbus-Id read back
 * in order.
 */
import {once} from 'node:events'
import {connect, type Socket} from 'node:net'

/** Publishes a Publisher has unanswered at once: more make Node warn of a listener leak (publish.ts watches each for a stalled body). */
const PIPELINE_DEPTH = 8

/**
 * Publishes on one keep-alive connection, the requests pipelined, and reads
 * each 204's Msgbus-Id in order: the ids of what it published.
 */
export class Publisher {
  private buffered = ''
  /** One per publish sent and not yet answered, in order. */
  private readonly waiting: Array<{resolve: (id: string) => void; reject: (error: Error) => void}> = []
  private failed: Error | undefined

  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1')
    socket.on('data', (text: string) => {
      this.buffered += text
      for (let end = this.buffered.indexOf('\r\n\r\n'); end >= 0; end = this.buffered.indexOf('\r\n\r\n')) {
        const head = this.buffered.slice(0, end)
        this.buffered = this.buffered.slice(end + 4)
        const id = /\r\nMsgbus-Id: (\S+)/i.exec(head)?.[1]
        if (!head.startsWith('HTTP/1.1 204') || !id) {
          this.fail(new Error(`a publish answered ${JSON.stringify(head.slice(0, 200))}`))
          return
        }

        this.waiting.shift()?.resolve(id)
      }

      this.pump()
    })
    socket.on('close', () => this.fail(new Error('the publisher connection closed')))
    socket.on('error', () => {})
  }

  static async open(port: number): Promise<Publisher> {
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    socket.setNoDelay(true)
    return new Publisher(socket)
  }

  /** Publishes the bodies on `channel` back to back; resolves with their ids, in order. */
  send(channel: string, bodies: Array<string | Buffer>, headers: Record<string, string> = {}): Promise<string[]> {
    if (this.failed) return Promise.reject(this.failed)
    const extra = Object.entries({'Content-Type': 'text/plain', ...headers})
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('')
    const ids = bodies.map((body) => {
      const bytes = typeof body === 'string' ? Buffer.from(body) : body
      const request = Buffer.concat([Buffer.from(`POST /msgbus/${channel} HTTP/1.1\r\nHost: x\r\n${extra}Content-Length: ${bytes.length}\r\n\r\n`), bytes])
      return new Promise<string>((resolve, reject) => this.queued.push({request, resolve, reject}))
    })
    this.pump()
    return Promise.all(ids)
  }

  /** Requests not yet written: at most PIPELINE_DEPTH are unanswered at once (each publish in flight watches its connection). */
  private readonly queued: Array<{request: Buffer; resolve: (id: string) => void; reject: (error: Error) => void}> = []

  private pump(): void {
    const requests: Buffer[] = []
    while (this.waiting.length < PIPELINE_DEPTH && this.queued.length > 0) {
      const {request, resolve, reject} = this.queued.shift()!
      requests.push(request)
      this.waiting.push({resolve, reject})
    }

    if (requests.length > 0) this.socket.write(Buffer.concat(requests))
  }

  private fail(error: Error): void {
    if (this.failed) return
    this.failed = error
    for (const waiter of [...this.waiting.splice(0), ...this.queued.splice(0)]) waiter.reject(error)
  }

  close(): void {
    this.socket.destroy()
  }
}
