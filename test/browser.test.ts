// The web side in a real browser (headless Chromium, driven by puppeteer-core):
// the chat demo, the viewer page a browser gets at a bus URL, and <img> on an
// MJPEG-style stream, each against real servers over real sockets.
import assert from 'node:assert/strict'
import {once} from 'node:events'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {createServer as createHttpServer} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {ElementHandle, Page} from 'puppeteer-core'
import type {BusServer} from '../src/lib/index.js'
import {browserSuite, png, screenshot} from './support/browsers.js'
import {freePort, msgbus, ROOT, ServeProcess, curl, publish, run, startBus, stopAll, until} from './support/harness.js'

const CHATDEMO = join(ROOT, 'web', 'chatdemo')

// The browser's own classes, used only inside functions that run in the page
// (the tests compile without DOM types).
declare const DataTransfer: new () => {items: {add(file: unknown): void}}
declare const File: new (bits: Uint8Array[], name: string, options: {type: string}) => unknown
declare const ClipboardEvent: new (type: string, init: {clipboardData: unknown; bubbles: boolean; cancelable: boolean}) => unknown
declare const DragEvent: new (type: string, init: {dataTransfer: unknown; bubbles: boolean; cancelable: boolean}) => unknown
interface PageElement {
  textContent: string | null
  dataset: Record<string, string | undefined>
  querySelector(selector: string): PageElement | null
  dispatchEvent(event: unknown): boolean
}
declare const document: {querySelector(selector: string): PageElement; querySelectorAll(selector: string): Iterable<PageElement>}

/** Waits until the server holds this many subscriptions, so what is published next reaches them all. */
function subscribers(server: BusServer, count: number): Promise<void> {
  return until(() => server.counters().subscribers === count, `${count} subscribers (have ${server.counters().subscribers})`)
}

/** Waits until the images found are these and decoded to these widths (0 until a picture has loaded). */
async function widthsBecome(page: Page, selector: string, expected: number[]): Promise<void> {
  const widths = () => page.$$eval(selector, (images) => images.map((image) => (image as unknown as {naturalWidth: number}).naturalWidth))
  await until(async () => JSON.stringify(await widths()) === JSON.stringify(expected), selector).catch(() => undefined)
  assert.deepEqual(await widths(), expected, selector)
}

/** The first element matching `selector` whose text holds `text`, once there is one. */
async function find(page: Page, selector: string, text = ''): Promise<ElementHandle> {
  const handle = await page.waitForFunction(
    (selector, text) => [...document.querySelectorAll(selector)].find((item) => item.textContent!.includes(text)),
    {},
    selector,
    text,
  )
  return handle.asElement() as ElementHandle
}

function attribute(handle: ElementHandle, name: string): Promise<string | null> {
  return handle.evaluate((item, name) => item.getAttribute(name), name)
}

function innerText(page: Page | ElementHandle, selector: string): Promise<string> {
  return page.$eval(selector, (item) => (item as unknown as {innerText: string}).innerText)
}

/** Not shown: absent, or there but not rendered (as Playwright's isHidden). */
async function isHidden(page: Page, selector: string): Promise<boolean> {
  const handle = await page.$(selector)
  return handle === null || (await handle.isHidden())
}

describe('browsers @slow', function () {
  this.timeout(30000)
  const suite = browserSuite('chromium')
  /** Uncaught exceptions and CSP refusals in any page: a page that works must have none. */
  const pageErrors = suite.problems
  const files = mkdtempSync(join(tmpdir(), 'msgbus-files-'))

  after(() => rmSync(files, {recursive: true, force: true}))
  afterEach(stopAll)

  /** A page in a browser context of its own: its own storage, as another person's browser. */
  async function open(url: string): Promise<Page> {
    const page = await suite.page()
    // Not 'load': a page holding an endless <img> stream never finishes loading.
    await page.goto(url, {waitUntil: 'domcontentloaded'})
    return page
  }

  async function live(page: Page): Promise<void> {
    await page.waitForSelector('#status[data-state="live"]')
  }

  /** The chat page with a nickname typed in, subscribed. */
  async function openChat(base: string, nick: string): Promise<Page> {
    const page = await open(`${base}/`)
    await page.locator('#nick').fill(nick)
    await page.$eval('#nick', (input) => (input as unknown as {blur(): void}).blur())
    await live(page)
    return page
  }

  async function say(page: Page, text: string): Promise<void> {
    await page.locator('#message').fill(text)
    await page.focus('#message')
    await page.keyboard.press('Enter')
  }

  function message(page: Page, text: string, sender?: string, extra = ''): Promise<ElementHandle> {
    return find(page, sender === undefined ? `#log .message${extra}:not([data-sender])` : `#log .message${extra}[data-sender="${sender}"]`, text)
  }

  it('chat: two pages talk to each other, to msgbus send and to msgbus dump', async () => {
    const server = await startBus({docroot: CHATDEMO})
    const alice = await openChat(server.url(), 'alice')
    // A name beyond Latin-1 travels as UTF-8 in Basic auth (btoa alone would throw).
    const bob = await openChat(server.url(), 'bøb 🐝')
    await subscribers(server, 2)

    await say(alice, 'hello bob')
    await message(bob, 'hello bob', 'alice')
    await message(alice, 'hello bob', 'alice', '.own')
    assert.equal(await attribute(await message(bob, 'hello bob', 'alice'), 'class'), 'message', 'not own on the other page')
    await say(bob, 'hi alice')
    await message(alice, 'hi alice', 'bøb 🐝')

    const sent = await msgbus(['send', 'chatdemo', '--url', server.url()], {input: 'hello from the shell'})
    assert.equal(sent.code, 0, sent.stderr)
    await Promise.all([message(alice, 'hello from the shell'), message(bob, 'hello from the shell')])

    const dumping = msgbus(['dump', 'chatdemo', '--url', server.url(), '--json', '--count', '1', '--timeout', '10'])
    await subscribers(server, 3)
    await say(alice, 'for the record')
    const dumped = await dumping
    assert.equal(dumped.code, 0, dumped.stderr)
    const record = JSON.parse(dumped.stdout)
    assert.equal(record.channel, 'chatdemo')
    assert.equal(record.sender, 'alice')
    assert.equal(record.body, 'for the record')
    assert.match(record.type, /^text\/plain; ?charset=utf-8$/)

    // The nickname is remembered across visits.
    await alice.reload({waitUntil: 'domcontentloaded'})
    assert.equal(await alice.$eval('#nick', (input) => (input as unknown as {value: string}).value), 'alice')
    await live(alice)
    await say(alice, 'back again')
    await message(bob, 'back again', 'alice')
    assert.deepEqual(
      await bob.$$eval('#log .message', (items) =>
        items.map((item) => [(item as unknown as PageElement).dataset.sender ?? null, (item as unknown as PageElement).querySelector('.text')!.textContent]),
      ),
      [
        ['alice', 'hello bob'],
        ['bøb 🐝', 'hi alice'],
        [null, 'hello from the shell'],
        ['alice', 'for the record'],
        ['alice', 'back again'],
      ],
    )
    await screenshot(alice, 'chat-alice')
    await screenshot(bob, 'chat-bob')
    assert.deepEqual(pageErrors, [])
  })

  it('chat: pictures pasted, dropped or picked reach the other page and show; other files show as type and size; refusals are shown', async () => {
    const server = await startBus({docroot: CHATDEMO, maxMessageSize: 64 * 1024})
    const alice = await openChat(server.url(), 'alice')
    const bob = await openChat(server.url(), 'bob')
    await subscribers(server, 2)

    // Paste and drop as the browser delivers them: an event carrying a File.
    for (const [kind, width] of [['paste', 30], ['drop', 40]] as const) {
      await alice.evaluate(
        ({kind, bytes}) => {
          const transfer = new DataTransfer()
          transfer.items.add(new File([new Uint8Array(bytes)], `${kind}.png`, {type: 'image/png'}))
          const init = {bubbles: true, cancelable: true}
          const event = kind === 'paste' ? new ClipboardEvent('paste', {...init, clipboardData: transfer}) : new DragEvent('drop', {...init, dataTransfer: transfer})
          document.querySelector(kind === 'paste' ? '#message' : '#log').dispatchEvent(event)
        },
        {kind, bytes: [...png(width, 20, [200, 40, 40])]},
      )
      await bob.waitForFunction((count) => [...document.querySelectorAll('#log .message[data-sender="alice"] img')].length >= count, {}, kind === 'paste' ? 1 : 2)
    }

    // Picked in the file dialog: the browser reads a file from disk and types it by its name.
    writeFileSync(join(files, 'picked.png'), png(50, 20, [40, 120, 200]))
    writeFileSync(join(files, 'big.bin'), Buffer.alloc(100 * 1024))
    const picker = (await alice.$('#file')) as ElementHandle<never>
    await picker.uploadFile(join(files, 'picked.png'))
    await widthsBecome(bob, '#log .message[data-sender="alice"] img', [30, 40, 50])
    await widthsBecome(alice, '#log .message.own img', [30, 40, 50])

    await curl(['-H', 'Content-Type: application/zip', '--data-binary', '@-', `${server.url()}/msgbus/chatdemo`], {input: Buffer.alloc(2048, 7)})
    const file = await bob.waitForSelector('#log .message[data-type="application/zip"] .file')
    assert.match(await file!.evaluate((item) => (item as unknown as {innerText: string}).innerText), /^application\/zip, 2\.0 KiB download$/)
    assert.notEqual(await file!.$eval('a', (link) => link.getAttribute('download')), null)

    await picker.uploadFile(join(files, 'big.bin'))
    await find(alice, '#error', 'message larger than the limit of 64 KiB')
    await screenshot(alice, 'chat-refused')
    await screenshot(bob, 'chat-pictures')
    assert.deepEqual(pageErrors, [])
  })

  it('viewer: a browser at a bus URL sees HTML sandboxed, text as text and pictures as pictures', async () => {
    const server = await startBus()
    // Navigated to (Sec-Fetch-Dest: document), or asked for by ?format=html.
    const viewer = await open(`${server.url()}/msgbus/foo`)
    const texts = await open(`${server.url()}/msgbus/?format=html&type=text/*`)
    await Promise.all([live(viewer), live(texts)])
    await subscribers(server, 2)
    assert.equal(await innerText(viewer, '#channel'), 'foo')
    assert.equal(await innerText(texts, '#channel'), 'every channel')
    assert.equal(await innerText(texts, '#filters-type dd'), 'text/*')
    assert.equal(await isHidden(texts, '#filters-sender'), true)
    assert.equal(await isHidden(viewer, '#filters-type'), true)

    const url = `${server.url()}/msgbus/foo`
    const html = '<h1>Hello from curl</h1><script>document.body.dataset.ran = "yes"</script>'
    for (const post of [
      () => curl(['-H', 'Content-Type: text/html', '--data-binary', html, url]),
      () => curl(['-u', 'carol:', '-H', 'Content-Type: text/plain; charset=utf-8', '--data-binary', 'plain <b>text</b>, not markup', url]),
      () => curl(['-H', 'Content-Type: image/png', '--data-binary', '@-', url], {input: png(64, 48, [30, 160, 90])}),
    ]) {
      const {code, stderr} = await post()
      assert.equal(code, 0, stderr)
    }
    await find(viewer, '#count', '3')

    const frameElement = await viewer.waitForSelector('.message[data-type="text/html"] iframe')
    // Links may open new tabs (allow-popups); never script, never this origin.
    const sandbox = String(await attribute(frameElement!, 'sandbox'))
    assert.ok(!/allow-scripts|allow-same-origin/.test(sandbox), `sandboxed: no scripts, an origin of its own (${sandbox})`)
    const frame = (await frameElement!.contentFrame())!
    await frame.waitForFunction(() => document.querySelector('h1')?.textContent?.includes('Hello from curl'))
    assert.equal(await frame.$eval('body', (body) => body.getAttribute('data-ran')), null, 'its script did not run')

    const text = (await viewer.$('.message[data-type="text/plain"]'))!
    assert.equal(await text.$eval('pre', (pre) => pre.textContent), 'plain <b>text</b>, not markup')
    assert.equal((await text.$$('b')).length, 0)
    assert.equal(await innerText(text, '.sender'), 'carol')
    await widthsBecome(viewer, '.message[data-type="image/png"] img', [64])

    // Newest first, each with its channel, sender, time and id.
    const types = (page: Page) => page.$$eval('.message', (items) => items.map((item) => (item as unknown as PageElement).dataset.type))
    assert.deepEqual(await types(viewer), ['image/png', 'text/plain', 'text/html'])
    for (const item of await viewer.$$('.message')) {
      assert.equal(await innerText(item, '.channel'), 'foo')
      assert.match(await innerText(item, '.sender'), /^(carol|anonymous)$/)
      assert.match(String(await item.$eval('time', (time) => time.getAttribute('datetime'))), /^\d{4}-\d\d-\d\dT[\d:.]+Z$/)
      assert.match(await innerText(item, '.id'), /^\d+-\d+$/)
    }

    // The filtered page subscribed with its own query: text only, from any channel.
    await find(texts, '#count', '2')
    assert.deepEqual(await types(texts), ['text/plain', 'text/html'])
    await screenshot(viewer, 'viewer')
    await viewer.emulateMediaFeatures([{name: 'prefers-color-scheme', value: 'dark'}])
    await screenshot(viewer, 'viewer-dark')
    await screenshot(texts, 'viewer-text-only')
    assert.deepEqual(pageErrors, [])
  })

  it('<img> on a bus URL shows each picture of an image stream as it arrives (MJPEG style)', async () => {
    const docroot = mkdtempSync(join(tmpdir(), 'msgbus-cam-'))
    try {
      // The page notes each width the picture takes, so no state is missed between two looks from here.
      writeFileSync(
        join(docroot, 'cam.html'),
        `<!doctype html><title>cam</title><img id="cam" src="/msgbus/cam" alt="camera">
<script>
  const cam = document.getElementById('cam')
  const seen = []
  setInterval(() => cam.naturalWidth && cam.naturalWidth !== seen.at(-1) && seen.push(cam.naturalWidth), 10)
</script>`,
      )
      const server = await startBus({docroot})
      const page = await open(`${server.url()}/cam.html`)
      await subscribers(server, 1)
      // Chromium completes a part only once the next part's headers arrive; the
      // server frames streams for <img> so that each picture shows on arrival.
      const widths = [40, 80, 24, 60]
      const seen = (): Promise<number[]> => page.evaluate('seen') as Promise<number[]>
      for (const [k, width] of widths.entries()) {
        assert.equal((await publish(server, 'cam', png(width, width, [width * 3, 90, 200]), 'image/png')).status, 204)
        await page.waitForFunction(`seen.at(-1) === ${width}`, {timeout: 3000})
        if (k === 2) await screenshot(page, 'cam')
      }

      assert.deepEqual(await seen(), widths)
      assert.deepEqual(pageErrors, [])
    } finally {
      rmSync(docroot, {recursive: true, force: true})
    }
  })

  it('chat: comes back by itself when the server restarts, even after an error answer in between', async () => {
    const port = await freePort()
    const args = ['--port', String(port), '--address', '127.0.0.1', '--docroot', CHATDEMO]
    const servers = [await ServeProcess.start(args)]
    /** Stops the running server, waits for the page to notice, and runs what stands in for it meanwhile. */
    async function restart(page: Page, meanwhile: () => Promise<void> = async () => {}): Promise<void> {
      assert.equal((await servers.at(-1)!.stop()).code, 0)
      await page.waitForSelector('#status[data-state="reconnecting"]')
      await meanwhile()
      servers.push(await ServeProcess.start(args))
      await live(page)
    }

    try {
      const page = await openChat(`http://127.0.0.1:${port}`, 'dana')
      const streams: string[] = []
      page.on('request', (request) => {
        if (request.url().includes('format=sse')) streams.push(request.url())
      })
      await say(page, 'before the restart')
      await message(page, 'before the restart', 'dana')

      // EventSource itself reconnects when the stream ends.
      await restart(page, () => screenshot(page, 'chat-restart-down'))
      await say(page, 'after the restart')
      await message(page, 'after the restart', 'dana')

      // An error answer (a proxy's 503 while the server is down) makes
      // EventSource give up for good; the page starts over by itself.
      await restart(page, async () => {
        const proxy = createHttpServer((req, res) => {
          res.writeHead(503, {'Content-Type': 'text/plain'})
          res.end('server restarting\n')
        })
        await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve))
        await once(proxy, 'request')
        proxy.closeAllConnections()
        await new Promise((resolve) => proxy.close(resolve))
      })
      // The new stream resumes after the last message the page showed.
      const lastShown = await attribute(await message(page, 'after the restart', 'dana'), 'data-id')
      assert.match(streams.at(-1)!, new RegExp(`[?&]last_event_id=${lastShown}$`))
      await say(page, 'after the proxy error')
      await message(page, 'after the proxy error', 'dana')
      assert.equal(await isHidden(page, '#error'), true)
      await screenshot(page, 'chat-restart')
      assert.deepEqual(pageErrors, [])
    } finally {
      await Promise.all(servers.map((server) => server.stop('SIGKILL')))
    }
  })
})
