// A long-lived curl subscriber, for tests that want a real client at the other end.
import {spawn, type ChildProcess} from 'node:child_process'
import {splitParts, until, type Part} from './harness.js'

/** A long-lived `curl -sN` subscriber: everything it prints is the multipart stream. */
export class CurlStream {
  /** Every stream still running, for killAll() after each test. */
  static readonly running = new Set<CurlStream>()

  readonly child: ChildProcess
  private chunks: Buffer[] = []
  private joined = Buffer.alloc(0)
  stderr = ''
  exited = false
  boundary = ''

  private constructor(args: string[]) {
    this.child = spawn('curl', ['-sSN', '-g', ...args], {stdio: ['ignore', 'pipe', 'pipe']})
    this.child.stdout!.on('data', (chunk: Buffer) => this.chunks.push(chunk))
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString()
    })
    // On close, not exit: then all it wrote has been read.
    this.child.on('close', () => {
      this.exited = true
    })
    CurlStream.running.add(this)
  }

  get data(): Buffer {
    if (this.chunks.length > 0) {
      this.joined = Buffer.concat([this.joined, ...this.chunks])
      this.chunks = []
    }

    return this.joined
  }

  /** Starts curl on a URL, without waiting for anything (for streams in formats other than multipart). */
  static start(url: string, extra: string[] = []): CurlStream {
    return new CurlStream([...extra, url])
  }

  /** Starts curl on a subscription URL and waits for the opening delimiter. */
  static async open(url: string, extra: string[] = []): Promise<CurlStream> {
    const stream = CurlStream.start(url, extra)
    await stream.until(() => /^--[^\r\n]+\r\n/.test(stream.data.toString('latin1')), 'the opening delimiter')
    stream.boundary = /^--([^\r\n]+)\r\n/.exec(stream.data.toString('latin1'))![1]
    return stream
  }

  until(test: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    return until(test, () => `${what}; got ${JSON.stringify(this.data.toString('latin1').slice(-300))} ${this.stderr}`, {
      timeoutMs,
      everyMs: 10,
      stop: () => this.exited && 'curl exited',
    })
  }

  parts(): Part[] {
    return splitParts(this.data, this.boundary)
  }

  async waitParts(count: number, timeoutMs = 5000): Promise<Part[]> {
    await this.until(() => this.parts().length >= count, `${count} parts`, timeoutMs)
    return this.parts()
  }

  bodies(): string[] {
    return this.parts().map((part) => part.body.toString())
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL')
  }

  static killAll(): void {
    for (const stream of CurlStream.running) stream.kill()
    CurlStream.running.clear()
  }
}
