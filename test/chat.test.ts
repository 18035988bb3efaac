// The chat demo in real browsers (issue 11): files keep their names, SVG and
// other active types never get a same-origin URL a person can open, the page
// carries its own Content-Security-Policy and works under it, empty and long
// messages read well, pictures open full size in the page, and the log is
// bounded by bytes. Each test runs against a real server over real sockets.
import assert from 'node:assert/strict'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import type {Page} from 'puppeteer-core'
import type {BusServer} from '../src/lib/index.js'
import {browserSuite, png, screenshot, type BrowserName} from './support/browsers.js'
import {ROOT, Subscription, curl, publish, startBus, stopAll, tempFolder, until} from './support/harness.js'

const CHATDEMO = join(ROOT, 'web', 'chatdemo')

// The page's own objects, used only inside functions that run in the page
// (the tests compile without DOM types).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type InPage = any
declare const document: InPage
declare const window: InPage
declare const DataTransfer: InPage
declare const File: InPage
declare const ClipboardEvent: InPage

/**
 * Runs in each page before its own scripts: notes the type of every blob URL
 * the page makes and every one it revokes (a blob's type decides what "open
 * in new tab" does with it), and every CSP refusal, which Firefox does not
 * report as a console error.
 */
const PRELOAD = `
  window.__blobs = []
  window.__revoked = []
  window.__violations = []
  const create = URL.createObjectURL.bind(URL)
  const revoke = URL.revokeObjectURL.bind(URL)
  URL.createObjectURL = (object) => {
    const url = create(object)
    window.__blobs.push({url, type: object.type})
    return url
  }
  URL.revokeObjectURL = (url) => {
    window.__revoked.push(url)
    revoke(url)
  }
  document.addEventListener('securitypolicyviolation', (event) => window.__violations.push(event.effectiveDirective + ' ' + event.blockedURI))
`

/** Types a blob URL may have: pictures that only ever decode to pixels, and downloads. */
const SAFE_BLOB_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp', 'image/x-icon', 'application/octet-stream'])

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="60" height="40"><script>parent.svgRan = 1; document.documentElement.dataset.ran = 1</script><rect width="60" height="40" fill="#c33"/></svg>`

/** What a person sees of one message. */
interface Shown {
  id: string
  type: string
  sender: string | null
  own: boolean
  text: string | null
  name: string | null
  file: string | null
  download: string | null
  href: string | null
  img: string | null
  width: number | null
  empty: string | null
  preview: string | null
  previewOpen: boolean | null
  more: string | null
  elements: string[]
}

function snapshot(page: Page): Promise<Shown[]> {
  return page.$$eval('#log .message', (items: InPage[]) =>
    items.map((item) => ({
      id: item.dataset.id,
      type: item.dataset.type,
      sender: item.dataset.sender ?? null,
      own: item.classList.contains('own'),
      text: item.querySelector('.text')?.textContent ?? null,
      name: item.querySelector('.card .name')?.textContent ?? null,
      file: item.querySelector('.file')?.innerText ?? null,
      download: item.querySelector('a[download]')?.getAttribute('download') ?? null,
      href: item.querySelector('a[download]')?.getAttribute('href') ?? null,
      img: item.querySelector('img')?.getAttribute('src') ?? null,
      width: item.querySelector('img')?.naturalWidth ?? null,
      empty: item.querySelector('.empty')?.textContent ?? null,
      preview: item.querySelector('.preview pre')?.textContent ?? null,
      previewOpen: item.querySelector('.preview')?.open ?? null,
      more: item.querySelector('.more')?.textContent ?? null,
      elements: [...item.querySelectorAll('*')].map((node: InPage) => node.localName),
    })),
  )
}

/**
 * Polls a test in the page. Not page.waitForFunction: over WebDriver BiDi it
 * builds its test with Function(), which the page's CSP rightly refuses.
 */
function waitIn(page: Page, test: (arg: number) => boolean, arg: number, what: string, timeoutMs = 8000): Promise<void> {
  return until(() => page.evaluate(test, arg), what, timeoutMs)
}

/** The messages shown once there are `count` of them (pictures decoded, so their sizes are known). */
async function shown(page: Page, count: number): Promise<Shown[]> {
  await waitIn(
    page,
    (count: number) => {
      const items = document.querySelectorAll('#log .message')
      return items.length >= count && [...document.querySelectorAll('#log img')].every((image: InPage) => image.complete)
    },
    count,
    `${count} messages shown`,
  ).catch(async (error: Error) => {
    throw new Error(`${error.message}; shown: ${JSON.stringify(await snapshot(page))}`)
  })
  return snapshot(page)
}

async function blobs(page: Page): Promise<Array<{url: string; type: string}>> {
  return page.evaluate(() => window.__blobs)
}

function subscribers(server: BusServer, count: number): Promise<void> {
  return until(() => server.counters().subscribers === count, `${count} subscribers (have ${server.counters().subscribers})`)
}

for (const name of ['chromium', 'firefox'] as BrowserName[]) {
  describe(`chat demo in ${name} @slow`, function () {
    this.timeout(40000)
    const suite = browserSuite(name)
    /** Uncaught exceptions and CSP refusals in any page: a page that works must have none. */
    const problems = suite.problems
    const inTemp = tempFolder('msgbus-chat-')
    afterEach(stopAll)

    /** A page in a browser context of its own: its own storage, as another person's browser. */
    async function open(url: string): Promise<Page> {
      // Warnings too: Firefox warns of a directive it does not know.
      const page = await suite.page({warnings: true})
      // Tall enough that a screenshot shows a whole conversation (the log scrolls inside the page).
      // Firefox 140 lacks the screen orientation command puppeteer sends with a viewport.
      if (name === 'chromium') await page.setViewport({width: 900, height: 1100})
      await page.evaluateOnNewDocument(PRELOAD)
      await page.goto(url, {waitUntil: 'load'})
      return page
    }

    /** The chat page with a nickname typed in, subscribed. */
    async function openChat(server: BusServer, nick: string): Promise<Page> {
      const page = await open(`${server.url()}/`)
      await page.$eval('#nick', (input: InPage, nick: string) => {
        input.value = nick
        input.dispatchEvent(new window.Event('change'))
      }, nick)
      await page.waitForSelector('#status[data-state="live"]')
      return page
    }

    /** No uncaught error and no CSP refusal, in the console or as an event. */
    async function assertClean(page: Page): Promise<void> {
      assert.deepEqual([...problems, ...(await page.evaluate(() => window.__violations))], [])
    }

    it('S2: an SVG shows from a data: URL, never from a blob: URL of the bus origin; downloads are application/octet-stream', async () => {
      const server = await startBus({docroot: CHATDEMO})
      const bob = await openChat(server, 'bob')
      await subscribers(server, 1)
      for (const [body, type] of [
        [SVG, 'image/svg+xml'],
        [SVG, 'image/svg+xml; name="logo.svg"'],
        ['<h1>hi</h1><script>alert(1)</script>', 'text/html; name="page.html"'],
        ['<x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>', 'application/xml; name="feed.xml"'],
        [png(30, 20, [40, 160, 90]), 'image/png'],
      ] as const) {
        assert.equal((await publish(server, 'chatdemo', body, type)).status, 204)
      }

      const [svg, named, html, xml, raster] = await shown(bob, 5)
      for (const item of [svg, named]) {
        assert.equal(item.type, 'image/svg+xml')
        assert.match(item.img!, /^data:image\/svg\+xml[;,]/, 'an SVG is shown from a data: URL (an opaque origin)')
        assert.equal(item.width, 60, 'and shown as the picture it is')
      }

      assert.match(raster.img!, /^blob:/, 'a raster picture may keep a blob URL')
      assert.deepEqual([html.name, html.download, xml.name, xml.download], ['page.html', 'page.html', 'feed.xml', 'feed.xml'])
      assert.ok(!html.elements.includes('iframe') && !html.elements.includes('h1'), 'an HTML file is a file card, not rendered')

      // The SVG opened full size (and its download) stay away from blob URLs of its own type too.
      await bob.click(`.message[data-id="${named.id}"] .picture`)
      await bob.waitForSelector('#lightbox[open]')
      assert.match(await bob.$eval('#lightbox-image', (image: InPage) => image.getAttribute('src')), /^data:image\/svg\+xml[;,]/)
      assert.equal(await bob.$eval('#lightbox-download', (link: InPage) => link.getAttribute('download')), 'logo.svg')
      await screenshot(bob, `chat-${name}-s2-lightbox`)
      await bob.keyboard.press('Escape')
      await bob.waitForSelector('#lightbox:not([open])')

      const made = await blobs(bob)
      const byUrl = new Map(made.map(({url, type}) => [url, type]))
      assert.equal(byUrl.get(raster.img!), 'image/png')
      assert.equal(byUrl.get(html.href!), 'application/octet-stream')
      assert.equal(byUrl.get(xml.href!), 'application/octet-stream')
      assert.equal(byUrl.get(await bob.$eval('#lightbox-download', (link: InPage) => link.getAttribute('href'))), 'application/octet-stream')
      for (const {url, type} of made) assert.ok(SAFE_BLOB_TYPES.has(type), `blob URL ${url} is ${type}`)
      assert.equal(await bob.evaluate(() => window.svgRan), undefined)
      await screenshot(bob, `chat-${name}-s2`)
      await assertClean(bob)
    })

    it('CSP: the page states its policy in a <meta> before anything loads, is held to it, and works with no refusal', async () => {
      const server = await startBus({docroot: CHATDEMO})
      const alice = await openChat(server, 'alice')
      const head = await alice.$$eval('head > *', (nodes: InPage[]) => nodes.map((node) => [node.localName, node.getAttribute('http-equiv'), node.getAttribute('content')]))
      const at = head.findIndex(([, equiv]) => equiv?.toLowerCase() === 'content-security-policy')
      assert.ok(at >= 0, 'a CSP <meta>')
      assert.ok(head.slice(0, at).every(([tag]) => tag === 'meta'), 'before every script, style and link')
      const policy = new Map(
        head[at][2]!
          .split(';')
          .map((directive: string) => directive.trim().split(/\s+/))
          .filter(([directive]: string[]) => directive)
          .map(([directive, ...sources]: string[]) => [directive, sources.sort()]),
      )
      assert.deepEqual(Object.fromEntries(policy), {
        'default-src': ["'none'"],
        'script-src': ["'self'"],
        'style-src': ["'self'"],
        'img-src': ["'self'", 'blob:', 'data:'],
        'media-src': ['blob:'],
        'connect-src': ["'self'"],
        'object-src': ["'none'"],
        'base-uri': ["'none'"],
        'form-action': ["'none'"],
      })

      // Everything the page does under it: send, receive text, a picture (blob:), an SVG (data:), a file, the lightbox.
      const bob = await openChat(server, 'bob')
      await subscribers(server, 2)
      await alice.type('#message', 'hello under a policy')
      await alice.keyboard.press('Enter')
      await shown(bob, 1)
      await publish(server, 'chatdemo', png(40, 30, [200, 40, 40]), 'image/png')
      await publish(server, 'chatdemo', SVG, 'image/svg+xml')
      await publish(server, 'chatdemo', Buffer.alloc(300, 1), 'application/zip; name="a.zip"')
      const items = await shown(bob, 4)
      assert.deepEqual(
        items.map((item) => [item.sender, item.type]),
        [
          ['alice', 'text/plain'],
          [null, 'image/png'],
          [null, 'image/svg+xml'],
          [null, 'application/zip'],
        ],
      )
      await bob.click('.message[data-type="image/png"] .picture')
      await bob.waitForSelector('#lightbox[open]')
      await bob.keyboard.press('Escape')
      await shown(alice, 4)
      await screenshot(alice, `chat-${name}-csp`)
      await assertClean(alice)
      await assertClean(bob)

      // The policy is enforced, not only present, and a refusal would be seen: an injected inline script does not run.
      const ran = await alice.evaluate(async () => {
        const script = document.createElement('script')
        script.textContent = 'window.injected = true'
        document.head.append(script)
        await new Promise((resolve) => setTimeout(resolve, 100))
        return window.injected === true
      })
      assert.equal(ran, false)
      await until(async () => (await alice.evaluate(() => window.__violations)).some((refusal: string) => refusal.startsWith('script-src')), 'the refusal to be reported')
    })

    it('file names round trip: files sent from one chat arrive in another as cards with their name, type, size and a download of that name', async () => {
      const server = await startBus({docroot: CHATDEMO})
      const alice = await openChat(server, 'alice')
      const bob = await openChat(server, 'bob')
      const wire = await Subscription.open(server, '/msgbus/chatdemo')
      await subscribers(server, 3)
      const files = [
        ['notes.txt', 'first line\nsecond line\n'],
        ['data.bin', Buffer.from([0, 1, 2, 250, 251])],
        ['Grüße "2025" \\ ok.txt', 'hallo\n'],
      ] as const
      for (const [file, body] of files) writeFileSync(inTemp(file), body)
      const input = await alice.$('#file')
      for (const [file] of files) {
        await input!.uploadFile(inTemp(file))
        const count = files.findIndex(([other]) => other === file) + 1
        await waitIn(alice, (count: number) => document.querySelectorAll('#log .message.own').length === count, count, `${file} sent`)
      }

      // A pasted screenshot has a generic name; it is still a picture. (Firefox
      // hides the files of a paste event made by a script, so there it is picked.)
      const screenshotBytes = png(900, 600, [60, 120, 200])
      if (name === 'chromium') {
        await alice.evaluate((bytes: number[]) => {
          const transfer = new DataTransfer()
          transfer.items.add(new File([new Uint8Array(bytes)], 'image.png', {type: 'image/png'}))
          document.querySelector('#message').dispatchEvent(new ClipboardEvent('paste', {clipboardData: transfer, bubbles: true, cancelable: true}))
        }, [...screenshotBytes])
      } else {
        writeFileSync(inTemp('image.png'), screenshotBytes)
        await input!.uploadFile(inTemp('image.png'))
      }

      const [notes, data, unicode, picture] = await shown(bob, 4)
      // On the wire: the name is the media type's name parameter, quoted per RFC 9110, or RFC 2231's UTF-8 form beyond ASCII.
      const types = (await wire.waitParts(4)).map((part) => part.headers['content-type'])
      assert.deepEqual(types, [
        'text/plain; name="notes.txt"',
        'application/octet-stream; name="data.bin"',
        "text/plain; name*=UTF-8''Gr%C3%BC%C3%9Fe%20%222025%22%20%5C%20ok.txt",
        'image/png; name="image.png"',
      ])
      wire.close()

      assert.deepEqual(
        [notes.name, notes.file, notes.download, notes.text, notes.previewOpen, notes.preview],
        ['notes.txt', 'text/plain, 23 bytes download', 'notes.txt', null, false, 'first line\nsecond line\n'],
        'a text file is a file card with its text folded away',
      )
      assert.deepEqual([data.name, data.file, data.download], ['data.bin', 'application/octet-stream, 5 bytes download', 'data.bin'])
      // Quotes and backslashes round trip; only in the name to save under do they become _ (no path separators, nothing Windows refuses).
      assert.deepEqual([unicode.name, unicode.download], ['Grüße "2025" \\ ok.txt', 'Grüße _2025_ _ ok.txt'])
      assert.deepEqual([picture.type, picture.width, picture.name], ['image/png', 900, null])

      // Clicked, the picture opens full size inside the page, its name kept for the download.
      await bob.click(`.message[data-id="${picture.id}"] .picture`)
      await bob.waitForSelector('#lightbox[open]')
      assert.equal(await bob.$eval('#lightbox-image', (image: InPage) => image.naturalWidth), 900)
      assert.equal(await bob.$eval('#lightbox-download', (link: InPage) => link.getAttribute('download')), 'image.png')
      assert.equal(await bob.$eval('#lightbox-name', (node: InPage) => node.textContent), 'image.png')
      assert.equal((await bob.browserContext().pages()).length, 1, 'no new tab')
      assert.equal(bob.url(), `${server.url()}/`)
      await screenshot(bob, `chat-${name}-lightbox`)
      await bob.keyboard.press('Escape')
      await bob.waitForSelector('#lightbox:not([open])')
      await bob.click(`.message[data-id="${notes.id}"] .preview summary`)
      await screenshot(bob, `chat-${name}-files`)
      await screenshot(alice, `chat-${name}-files-sent`)
      await assertClean(alice)
      await assertClean(bob)
    })

    if (name !== 'chromium') return

    it('curl: a name parameter names the file; without one the download is message-<id>.<ext>; hostile names are cleaned and shown as text', async () => {
      const server = await startBus({docroot: CHATDEMO})
      const bob = await openChat(server, 'bob')
      await subscribers(server, 1)
      const url = `${server.url()}/msgbus/chatdemo`
      for (const args of [
        ['-H', 'Content-Type: text/plain; name="notes.txt"', '--data-binary', 'from curl\n'],
        ['-H', 'Content-Type: application/zip', '--data-binary', '@-'],
        ['-H', 'Content-Type: application/octet-stream; name="..\\\\..\\\\evil\u202Etxt.exe"', '--data-binary', 'MZ'],
        ['-H', 'Content-Type: text/html; name="<img src=x onerror=alert(1)>.html"', '--data-binary', '<b>bold</b>'],
        ['-H', "Content-Type: application/pdf; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", '--data-binary', '%PDF-1.7'],
      ]) {
        const {code, stderr} = await curl([...args, url], {input: Buffer.alloc(2048, 7)})
        assert.equal(code, 0, stderr)
      }

      const [notes, zip, evil, html, pdf] = await shown(bob, 5)
      assert.deepEqual([notes.name, notes.file, notes.download], ['notes.txt', 'text/plain, 10 bytes download', 'notes.txt'])
      assert.deepEqual([zip.name, zip.file, zip.download], [null, 'application/zip, 2.0 KiB download', `message-${zip.id}.zip`])
      assert.match(zip.id, /^\d+-\d+$/)
      // The right-to-left override would have shown "evilexe.txt"; the backslashes would be folders on Windows.
      assert.deepEqual([evil.name, evil.download], ['..\\..\\eviltxt.exe', '_.._eviltxt.exe'])
      assert.deepEqual([html.name, html.download], ['<img src=x onerror=alert(1)>.html', '_img src=x onerror=alert(1)_.html'])
      assert.ok(!html.elements.includes('img') && !html.elements.includes('b'), 'the name and body are text, not markup')
      assert.equal(html.preview, '<b>bold</b>')
      assert.deepEqual([pdf.name, pdf.download], ['résumé.pdf', 'résumé.pdf'])
      await screenshot(bob, 'chat-chromium-curl')
      await assertClean(bob)
    })

    it('an empty body shows "(empty)"; a long text is collapsed, with a toggle that shows it all', async () => {
      const server = await startBus({docroot: CHATDEMO})
      const bob = await openChat(server, 'bob')
      await subscribers(server, 1)
      const lines = Array.from({length: 200}, (_, k) => `line ${k + 1}`).join('\n')
      const wide = 'x'.repeat(5000)
      for (const [body, type] of [
        ['', 'text/plain'],
        ['', 'application/octet-stream'],
        ['', 'text/plain; name="empty.txt"'],
        [lines, 'text/plain; charset=utf-8'],
        [wide, 'text/plain'],
        ['short\nand sweet', 'text/plain'],
      ]) {
        assert.equal((await publish(server, 'chatdemo', body, type)).status, 204)
      }

      const [emptyText, emptyFile, emptyNamed, long, oneLine, short] = await shown(bob, 6)
      assert.deepEqual([emptyText.empty, emptyText.text], ['(empty)', null])
      assert.equal(emptyFile.empty, '(empty)')
      assert.deepEqual([emptyNamed.name, emptyNamed.file, emptyNamed.empty], ['empty.txt', 'text/plain, 0 bytes download', '(empty)'])
      assert.equal(long.more, `show all (200 lines, ${(lines.length / 1024).toFixed(1)} KiB)`)
      assert.equal(long.text, `${lines.split('\n').slice(0, 12).join('\n')}…`)
      assert.equal(oneLine.more, 'show all (1 line, 4.9 KiB)')
      assert.ok(oneLine.text!.length <= 1025)
      assert.deepEqual([short.text, short.more], ['short\nand sweet', null])
      await screenshot(bob, 'chat-chromium-empty-and-long')

      const toggle = `.message[data-id="${long.id}"] .more`
      await bob.click(toggle)
      assert.equal(await bob.$eval(`.message[data-id="${long.id}"] .text`, (text: InPage) => text.textContent), lines)
      assert.equal(await bob.$eval(toggle, (button: InPage) => [button.textContent, button.getAttribute('aria-expanded')].join(' ')), 'show less true')
      await screenshot(bob, 'chat-chromium-long-expanded')
      await bob.click(toggle)
      assert.equal(await bob.$eval(`.message[data-id="${long.id}"] .text`, (text: InPage) => text.textContent), long.text)
      await assertClean(bob)
    })

    it('the log is bounded by bytes too: past 64 MiB of bodies the oldest messages leave and their blob URLs are revoked', async function () {
      // 72 MiB through a headless browser: some 2 s a message on a slow machine.
      this.timeout(90000)
      const server = await startBus({docroot: CHATDEMO})
      const bob = await openChat(server, 'bob')
      await subscribers(server, 1)
      const size = 8 * 1024 * 1024
      // One at a time, each shown before the next, so the page is never a slow subscriber.
      for (let k = 1; k <= 9; k++) {
        assert.equal((await publish(server, 'chatdemo', Buffer.alloc(size, 0x61 + k), `text/plain; name="big-${k}.txt"`)).status, 204)
        await waitIn(bob, (k: number) => document.querySelector('#log .message:last-child .name')?.textContent === `big-${k}.txt`, k, `big-${k}.txt shown`, 15000)
      }

      const items = await snapshot(bob)
      assert.deepEqual(
        items.map((item) => item.name),
        Array.from({length: 8}, (_, k) => `big-${k + 2}.txt`),
        '8 x 8 MiB is the most that fits in 64 MiB',
      )
      const made = await blobs(bob)
      const revoked: string[] = await bob.evaluate(() => window.__revoked)
      assert.equal(made.length, 9)
      assert.deepEqual(revoked, [made[0].url], "the dropped message's download")
      await screenshot(bob, 'chat-chromium-bounded')
      await assertClean(bob)
    })
  })
}
