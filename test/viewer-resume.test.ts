// History in the pages (issue 14): the viewer and the chat demo, in real
// browsers against a bus in this process, resume after a dropped stream
// with every message shown once and in order, show a line where the server
// says messages may be missing, and show a backlog when they open.
// Screenshots go to test-output/browser/resume-*.png.
import assert from 'node:assert/strict'
import {join} from 'node:path'
import type {HTTPRequest, Page} from 'puppeteer-core'
import type {BusServer} from '../src/lib/index.js'
import {browserSuite, screenshot, type BrowserName} from './support/browsers.js'
import {ROOT, freePort, publish, startBus, stopAll, until} from './support/harness.js'

const CHATDEMO = join(ROOT, 'web', 'chatdemo')

/** Runs an expression in the page: a string, as the tests compile without DOM types (see viewer.test.ts). */
function js<T>(page: Page, expression: string): Promise<T> {
  return page.evaluate(expression) as Promise<T>
}

/** Polls from here: waitForFunction compiles its test in the page, which the viewer's CSP refuses in Firefox. */
function waitFor(page: Page, expression: string, timeoutMs = 8000): Promise<void> {
  return until(() => js<boolean>(page, `Boolean(${expression})`).catch(() => false), expression, {timeoutMs, everyMs: 50})
}

function subscribers(server: BusServer, count: number): Promise<void> {
  return until(() => server.counters().subscribers === count, () => `${count} subscribers (have ${server.counters().subscribers})`, 8000)
}

/** Publishes and returns the message's id. */
async function published(server: BusServer, channel: string, body: string, sender?: string): Promise<string> {
  const headers: Record<string, string> = sender === undefined ? {} : {Authorization: `Basic ${Buffer.from(`${sender}:`).toString('base64')}`}
  const reply = await publish(server, channel, body, 'text/plain; charset=utf-8', headers)
  assert.equal(reply.status, 204, reply.body.toString())
  return String(reply.headers['msgbus-id'])
}

/** Cuts every subscription stream from the server's side: destroyed (a reset), or ended properly (the server closing it). */
function dropStreams(server: BusServer, how: 'destroy' | 'end'): void {
  const streams = [...server.subscriptions]
  assert.ok(streams.length > 0, 'a stream to drop')
  for (const stream of streams) {
    if (how === 'destroy') stream.socket.destroy()
    else stream.end()
  }
}

/**
 * The page's event-stream requests, held on demand: while holding, a
 * request (EventSource's own reconnect) waits until released, so a test
 * publishes while the page is away, whatever the machine's speed.
 */
class StreamGate {
  /** The URL of every event-stream request the page made. (Not their headers: Chromium's interception does not show the Last-Event-ID that EventSource adds.) */
  readonly seen: string[] = []
  private readonly held: HTTPRequest[] = []
  private holding = false

  private constructor() {}

  static async on(page: Page): Promise<StreamGate> {
    const gate = new StreamGate()
    await page.setRequestInterception(true)
    page.on('request', (request) => {
      if (request.isInterceptResolutionHandled()) return
      if (!request.url().includes('format=sse')) {
        void request.continue()
        return
      }
      gate.seen.push(request.url())
      if (gate.holding) gate.held.push(request)
      else void request.continue()
    })
    return gate
  }

  hold(): void {
    this.holding = true
  }

  /** Waits until a request is held: the page is reconnecting, and will not get through until release(). */
  async reconnecting(): Promise<string> {
    await until(() => this.held.length > 0, 'the page to reconnect', 15000)
    return this.seen.at(-1)!
  }

  release(): void {
    this.holding = false
    for (const request of this.held.splice(0)) void request.continue()
  }
}

for (const name of ['chromium', 'firefox'] as BrowserName[]) {
  describe(`resume and gaps in the pages (${name}) @slow`, function () {
    this.timeout(60000)
    const suite = browserSuite(name)
    afterEach(stopAll)

    // ---- the viewer ----------------------------------------------------------

    async function openViewer(server: BusServer, path: string, gated = false): Promise<{page: Page; gate: StreamGate | undefined}> {
      const page = await suite.page()
      if (name === 'chromium') await page.setViewport({width: 1000, height: 800})
      const gate = gated ? await StreamGate.on(page) : undefined
      const before = server.counters().subscribers
      await page.goto(`${server.url()}/msgbus/${path}`, {waitUntil: 'domcontentloaded'})
      await page.waitForSelector('#status[data-state="live"]')
      await subscribers(server, before + 1)
      return {page, gate}
    }

    /** The list as shown, oldest first: a message card as its body text, a gap line as `gap:<reason>`. */
    function viewerList(page: Page): Promise<string[]> {
      return js(page, `[...document.getElementById('messages').children].reverse().map((item) => item.classList.contains('gap') ? 'gap:' + item.dataset.reason : item.querySelector('pre').textContent)`)
    }

    function viewerIds(page: Page): Promise<string[]> {
      return js(page, `[...document.querySelectorAll('#messages > li.message')].reverse().map((item) => item.dataset.id)`)
    }

    it('viewer: a stream dropped by the server resumes after the last message shown; every message once, in order', async () => {
      const server = await startBus({history: 100})
      const {page, gate} = await openViewer(server, 'resume', true)
      const ids: string[] = []
      for (const body of ['a1', 'a2', 'a3']) ids.push(await published(server, 'resume', body))
      await waitFor(page, `document.getElementById('count').textContent === '3'`)

      // Reset by the server while messages are published: EventSource comes back by itself, held here until they all are.
      gate!.hold()
      dropStreams(server, 'destroy')
      const reconnect = await gate!.reconnecting()
      await waitFor(page, `document.getElementById('status').dataset.state === 'reconnecting'`)
      for (const body of ['b1', 'b2', 'b3', 'b4']) ids.push(await published(server, 'resume', body))
      // The URL asks for no backlog: what was published meanwhile comes because of the Last-Event-ID that EventSource sends.
      assert.equal(reconnect, `${server.url()}/msgbus/resume?format=sse`)
      gate!.release()
      await waitFor(page, `document.getElementById('count').textContent === '7'`)
      await page.waitForSelector('#status[data-state="live"]')
      for (const body of ['c1', 'c2']) ids.push(await published(server, 'resume', body))
      await waitFor(page, `document.getElementById('count').textContent === '9'`)
      assert.equal(await js(page, `document.getElementById('status').textContent`), 'live, resumed')
      assert.equal(await js(page, `document.getElementById('status').title`), `resumed after message ${ids[2]}`)

      // Ended properly by the server this time, the messages published at once: before or after the page is back, each shows once.
      dropStreams(server, 'end')
      for (const body of ['d1', 'd2']) ids.push(await published(server, 'resume', body))
      await waitFor(page, `document.getElementById('count').textContent === '11'`, 15000)
      await subscribers(server, 1)
      ids.push(await published(server, 'resume', 'e1'))
      await waitFor(page, `document.getElementById('count').textContent === '12'`)

      assert.deepEqual(await viewerList(page), ['a1', 'a2', 'a3', 'b1', 'b2', 'b3', 'b4', 'c1', 'c2', 'd1', 'd2', 'e1'], 'no gap, no message twice')
      assert.deepEqual(await viewerIds(page), ids)
      await screenshot(page, `resume-viewer-${name}`)
      assert.deepEqual(suite.problems, [])
    })

    it('viewer: a resume from further back than the server keeps shows a gap line where messages may be missing', async () => {
      const server = await startBus({history: 3})
      const {page, gate} = await openViewer(server, 'lossy', true)
      const first = [await published(server, 'lossy', 'm1'), await published(server, 'lossy', 'm2')]
      await waitFor(page, `document.getElementById('count').textContent === '2'`)

      gate!.hold()
      dropStreams(server, 'end')
      await gate!.reconnecting()
      const later: string[] = []
      for (let k = 1; k <= 10; k++) later.push(await published(server, 'lossy', `n${k}`))
      gate!.release()
      await waitFor(page, `document.getElementById('count').textContent === '5'`)
      await page.waitForSelector('#messages > li.gap')

      assert.deepEqual(await viewerList(page), ['m1', 'm2', 'gap:expired', 'n8', 'n9', 'n10'])
      assert.deepEqual(await viewerIds(page), [...first, ...later.slice(7)])
      const gap = await js<{after: string; role: string; text: string; elements: string[]}>(
        page,
        `(() => { const line = document.querySelector('#messages > li.gap'); return {after: line.dataset.after, role: line.getAttribute('role'), text: line.textContent, elements: [...line.querySelectorAll('*')].map((node) => node.localName)} })()`,
      )
      assert.equal(gap.after, first[1])
      assert.equal(gap.role, 'note')
      assert.match(gap.text, /^Gap: Messages may be missing here: the server no longer keeps messages after .+ \(expired\)\.$/)
      assert.deepEqual(gap.elements, ['strong'])
      await screenshot(page, `resume-viewer-gap-${name}`)
      // Not a message: not counted, not searched away.
      await page.type('#search', 'n9')
      await waitFor(page, `document.getElementById('shown').textContent.startsWith('showing 1 of 5')`)
      assert.equal(await js(page, `document.querySelector('#messages > li.gap').hidden`), false)
      assert.deepEqual(suite.problems, [])
    })

    it('viewer: after a server restart that kept nothing, the page comes back, says messages may be missing, and goes on', async () => {
      const port = await freePort()
      const server = await startBus({port})
      const {page} = await openViewer(server, 'restart')
      await published(server, 'restart', 'before 1')
      const lastShown = await published(server, 'restart', 'before 2')
      await waitFor(page, `document.getElementById('count').textContent === '2'`)
      await server.stop(100)
      const again = await startBus({port})
      // Published before or after the page is back: the new server replays what it has after the gap.
      await published(again, 'restart', 'after 1')
      await waitFor(page, `document.getElementById('count').textContent === '3'`, 30000)
      await published(again, 'restart', 'after 2')
      await waitFor(page, `document.getElementById('count').textContent === '4'`)
      assert.deepEqual(await viewerList(page), ['before 1', 'before 2', 'gap:expired', 'after 1', 'after 2'])
      assert.equal(await js(page, `document.querySelector('#messages > li.gap').dataset.after`), lastShown)
      await screenshot(page, `resume-viewer-restart-${name}`)
      // Firefox reports each stream it could not open while the server was down; nothing else may show.
      assert.deepEqual(suite.problems.filter((problem) => !/can.t establish a connection to the server/.test(problem)), [])
    })

    it('viewer: ?since= shows the backlog first, and the header says from where', async () => {
      const server = await startBus()
      for (const body of ['old 1', 'old 2', 'old 3']) await published(server, 'backlog', body)
      await published(server, 'elsewhere', 'not this channel')

      const {page: all} = await openViewer(server, 'backlog?since=all')
      await waitFor(all, `document.getElementById('count').textContent === '3'`)
      await published(server, 'backlog', 'new')
      await waitFor(all, `document.getElementById('count').textContent === '4'`)
      assert.deepEqual(await viewerList(all), ['old 1', 'old 2', 'old 3', 'new'])
      assert.equal(await js(all, `document.getElementById('replay').hidden`), false)
      assert.equal(await js(all, `document.querySelector('#replay dd').textContent`), 'all')
      await screenshot(all, `resume-viewer-since-all-${name}`)

      // Ten minutes back, from a server younger than that: all it has, after a line saying older ones are not kept.
      const {page: recent} = await openViewer(server, 'backlog?since=10m')
      await waitFor(recent, `document.getElementById('count').textContent === '4'`)
      await recent.waitForSelector('#messages > li.gap')
      assert.deepEqual(await viewerList(recent), ['gap:expired', 'old 1', 'old 2', 'old 3', 'new'])
      assert.match(await js<string>(recent, `document.querySelector('#messages > li.gap').textContent`), /^Gap: Older messages are not kept: the server's history begins after .+ \(expired\)\.$/)
      assert.equal(await js(recent, `document.querySelector('#replay dd').textContent`), '10m')

      // Without since=, the page shows what comes from now on.
      const {page: plain} = await openViewer(server, 'backlog')
      assert.equal(await js(plain, `document.getElementById('replay').hidden`), true)
      await published(server, 'backlog', 'newest')
      await waitFor(plain, `document.getElementById('count').textContent === '1'`)
      assert.deepEqual(await viewerList(plain), ['newest'])
      assert.deepEqual(suite.problems, [])
    })

    // ---- the chat demo ---------------------------------------------------------

    async function openChat(server: BusServer, nick: string, gated = false): Promise<{page: Page; gate: StreamGate | undefined}> {
      const page = await suite.page({warnings: true})
      if (name === 'chromium') await page.setViewport({width: 900, height: 900})
      const gate = gated ? await StreamGate.on(page) : undefined
      await page.goto(`${server.url()}/`, {waitUntil: 'load'})
      await js(page, `(() => { const input = document.getElementById('nick'); input.value = ${JSON.stringify(nick)}; input.dispatchEvent(new Event('change')) })()`)
      await page.waitForSelector('#status[data-state="live"]')
      return {page, gate}
    }

    /** The log as shown: a message as `sender: text`, a gap line as `gap:<reason>`. */
    function chatLog(page: Page): Promise<string[]> {
      return js(page, `[...document.querySelectorAll('#log > .message, #log > .gap')].map((item) => item.classList.contains('gap') ? 'gap:' + item.dataset.reason : (item.dataset.sender ?? 'shell') + ': ' + item.querySelector('.text').textContent)`)
    }

    function chatCount(page: Page, count: number, timeoutMs?: number): Promise<void> {
      return waitFor(page, `document.querySelectorAll('#log > .message').length === ${count}`, timeoutMs)
    }

    it('chat: a page that opens shows the recent conversation first, then goes on live', async () => {
      const server = await startBus({docroot: CHATDEMO})
      await published(server, 'chatdemo', 'is anyone here?', 'alice')
      await published(server, 'chatdemo', 'yes, hi', 'bob')
      await published(server, 'chatdemo', 'from the shell')
      const {page, gate} = await openChat(server, 'carol', true)
      await chatCount(page, 3)
      assert.match(gate!.seen[0], /[?&]since=1h(&|$)/)
      await published(server, 'chatdemo', 'hello carol', 'alice')
      await chatCount(page, 4)
      // The backlog reaches back further than this new server has been up: no gap line for that, nothing this page had is missing.
      assert.deepEqual(await chatLog(page), ['alice: is anyone here?', 'bob: yes, hi', 'shell: from the shell', 'alice: hello carol'])
      assert.equal(await js(page, `document.getElementById('empty')`), null)
      await screenshot(page, `resume-chat-backlog-${name}`)
      assert.deepEqual(suite.problems, [])
    })

    it('chat: a dropped stream resumes after the last message shown, with a gap line where the server no longer has messages', async () => {
      const server = await startBus({docroot: CHATDEMO, history: 3})
      const {page, gate} = await openChat(server, 'dana', true)
      await subscribers(server, 1)
      await published(server, 'chatdemo', 'first', 'erin')
      const lastShown = await published(server, 'chatdemo', 'second', 'erin')
      await chatCount(page, 2)

      gate!.hold()
      dropStreams(server, 'destroy')
      const reconnect = await gate!.reconnecting()
      for (let k = 1; k <= 10; k++) await published(server, 'chatdemo', `missed ${k}`, 'erin')
      gate!.release()
      // The same URL, whose since=1h would replay all that is kept without a gap: the server resumes after EventSource's Last-Event-ID.
      assert.match(reconnect, /\?format=sse&since=1h$/)
      await chatCount(page, 5)
      await page.waitForSelector('#status[data-state="live"]')
      await published(server, 'chatdemo', 'back', 'erin')
      await chatCount(page, 6)
      assert.deepEqual(await chatLog(page), ['erin: first', 'erin: second', 'gap:expired', 'erin: missed 8', 'erin: missed 9', 'erin: missed 10', 'erin: back'])
      assert.match(await js<string>(page, `document.querySelector('#log > .gap').textContent`), /^Messages may be missing here: the server no longer keeps messages after \d\d:\d\d:\d\d/)
      assert.equal(await js(page, `document.querySelector('#log > .gap').dataset.after`), lastShown)
      assert.equal(await js(page, `document.querySelector('#log > .gap').children.length`), 0, 'text only')
      await screenshot(page, `resume-chat-gap-${name}`)
      assert.deepEqual(suite.problems, [])
    })
  })
}
