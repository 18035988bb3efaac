// Issue 13: new connections get in while fan-outs run. Node (libuv 1.45 and
// later) accepts at most one connection per turn of the event loop, so a
// server whose turns are long leaves connections in the kernel's listen
// queue, and once that is full clients wait out SYN retransmissions (20-30 s
// in the soak). These pin what the server does about it, without timing
// anything: the listen backlog it asks for, and that a fan-out leaves turns
// for an accept. bench/accept.ts measures the waits.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {connect} from 'node:net'
import {performance} from 'node:perf_hooks'
import {portOf, startBus, stopAll} from './support/harness.js'

describe('accepting connections under load', function () {
  afterEach(stopAll)

  it("listens with a backlog of 4096 (as Linux caps it: net.core.somaxconn), not Node's 511: the listener's Send-Q in ss", async function () {
    let somaxconn: number
    try {
      somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim())
      execFileSync('ss', ['-V'], {stdio: 'ignore'})
    } catch {
      this.skip() // not Linux, or no ss
    }

    const server = await startBus()
    const port = portOf(server)
    const listening = execFileSync('ss', ['-ltnH', `( sport = :${port} )`], {encoding: 'utf8'})
    const line = listening.split('\n').find((text) => text.includes(`127.0.0.1:${port} `))
    assert.ok(line, `no listening socket on port ${port} in:\n${listening}`)
    // State, Recv-Q (connections waiting to be accepted), Send-Q (for a listener: its backlog).
    const [, , backlog] = line.trim().split(/\s+/)
    assert.equal(Number(backlog), Math.min(4096, somaxconn))
  })

  it('while a message goes out to 1,000 subscribers, a new connection is accepted and its subscription answered 200 before the fan-out ends', async () => {
    const server = await startBus()
    // Subscribers without sockets, each taking 50 µs as a socket write on a busy machine may:
    // what matters is whether the fan-out lets the event loop turn (and accept) before it ends.
    const busy = (): boolean => {
      const until = performance.now() + 0.05
      while (performance.now() < until);
      return true
    }

    for (let i = 0; i < 1000; i++) server.bus.subscribe({channel: 'big', deliver: busy})
    const events: string[] = []
    const client = connect({port: portOf(server), host: '127.0.0.1'})
    client.on('error', () => {})
    client.write('GET /msgbus/newcomer HTTP/1.1\r\nHost: x\r\n\r\n')
    const answered = new Promise<void>((resolve) => {
      client.once('data', (chunk: Buffer) => {
        events.push(chunk.subarray(0, 12).toString('latin1'))
        resolve()
      })
    })
    const delivery = await server.bus.publish({channel: 'big', type: 'text/plain', essence: 'text/plain', body: Buffer.from('x')})
    events.push(`fan-out to ${delivery.subscribers} done`)
    await answered
    client.destroy()
    assert.deepEqual(events, ['HTTP/1.1 200', 'fan-out to 1000 done'])
  })
})
