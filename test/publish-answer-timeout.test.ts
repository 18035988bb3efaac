// A publish whose connection is accepted and never answered (the cluster's
// primary handing it to a worker that is dying): publish() fails at
// answerTimeoutMs with one line, and PipelinedPublisher (send --lines) drops
// the connection and sends what it had in flight again, to a real bus.
import assert from 'node:assert/strict'
import {ClientError, isRetryable, PipelinedPublisher, publish, subscribe, type ReceivedMessage} from '../src/lib/client/index.js'
import {portOf, startBus, stopAll, until} from './support/harness.js'
import {closeSilentProxies, silentProxy} from './support/silent-proxy.js'

describe('publish answer timeout (answerTimeoutMs)', function () {
  this.timeout(30_000)
  const controllers = new Set<AbortController>()

  afterEach(async () => {
    for (const controller of controllers) controller.abort()
    controllers.clear()
    closeSilentProxies()
    await stopAll()
  })

  it('publish() left unanswered: a one-line error naming the URL and the timeout, that can heal', async () => {
    const proxy = await silentProxy(0, () => true)
    const failure = await publish('foo', 'hello', {url: proxy.url, answerTimeoutMs: 1000}).then(
      (result) => assert.fail(`published: ${JSON.stringify(result)}`),
      (error: unknown) => error,
    )
    assert.ok(failure instanceof ClientError, String(failure))
    assert.equal(failure.message, `${proxy.url}/msgbus/foo: no answer within 1 s (the message may have been published)`)
    assert.equal(failure.code, 'ERR_MSGBUS_REQUEST_FAILED')
    assert.ok(isRetryable(failure), 'a failure that can heal')
    assert.equal(proxy.connections(), 1)
  })

  it('PipelinedPublisher whose first connection is left unanswered: it reconnects and every line reaches the bus; duplicates no more than retried', async () => {
    const server = await startBus()
    const controller = new AbortController()
    controllers.add(controller)
    const subscription = subscribe('lines', {url: server.url(), signal: controller.signal})
    const bodies: string[] = []
    const connected = new Promise((resolve) => subscription.once('connect', resolve))
    ;(async () => {
      for await (const message of subscription as AsyncIterable<ReceivedMessage>) bodies.push(message.body.toString())
    })().catch(() => {})
    await connected

    const proxy = await silentProxy(portOf(server), (index) => index === 0)
    const publisher = new PipelinedPublisher('lines', {url: proxy.url, answerTimeoutMs: 1000, retryForMs: 20_000, minDelayMs: 50, maxDelayMs: 200})
    const errors: string[] = []
    publisher.on('disconnect', ({error}) => errors.push(error.message))
    const lines = Array.from({length: 50}, (_, i) => `line ${i}`)
    for (const line of lines) await publisher.send(line)
    const stats = await publisher.close()

    assert.equal(stats.sent, lines.length)
    assert.equal(stats.lost, 0)
    assert.ok(stats.retried > 0, 'the lines on the silent connection counted retried')
    assert.ok(proxy.connections() >= 2, `${proxy.connections()} connections`)
    assert.deepEqual(errors, [`${proxy.url}/msgbus/lines: no answer within 1 s (the message may have been published)`])
    await until(() => new Set(bodies).size === lines.length, 'every line at the subscriber')
    assert.deepEqual([...new Set(bodies)].sort(), [...lines].sort())
    assert.ok(bodies.length - lines.length <= stats.retried, `${bodies.length} received, ${stats.retried} retried`)
  })
})
