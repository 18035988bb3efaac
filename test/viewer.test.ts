// The viewer page a browser gets at a bus URL, in real browsers against a
// real server: what a person watching a channel relies on. Screenshots go to
// test-output/browser/viewer-*.png.
import assert from 'node:assert/strict'
import {mkdirSync, writeFileSync} from 'node:fs'
import {createServer as createHttpServer} from 'node:http'
import {join} from 'node:path'
import type {Page} from 'puppeteer-core'
import type {BusServer} from '../src/lib/index.js'
import {browserSuite, png, screenshot, SCREENSHOTS, type BrowserName} from './support/browsers.js'
import {freePort, Subscription, curl, publish, run, sleep, startBus, stopAll, tempFolder, until} from './support/harness.js'

const RASTER = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp', 'image/x-icon', 'image/vnd.microsoft.icon']

/**
 * Runs an expression in the page. A string, not a function: tsx wraps named
 * functions in a helper the page lacks, and the tests compile without DOM types.
 */
function js<T>(page: Page, expression: string): Promise<T> {
  return page.evaluate(expression) as Promise<T>
}

/** Polls from here: waitForFunction with a string compiles it in the page, which the page's CSP (no 'unsafe-eval') refuses in Firefox. */
function waitFor(page: Page, expression: string, timeout = 8000): Promise<void> {
  return until(() => js<boolean>(page, `Boolean(${expression})`).catch(() => false), expression, {timeoutMs: timeout, everyMs: 50})
}

const q = JSON.stringify

/**
 * A real click, on an element first brought to the middle of the view (at
 * its edge, the sticky header would take the click), once the cards that
 * came into view have been laid out (cards out of view are skipped, at an
 * estimated height, until seen).
 */
async function press(page: Page, selector: string): Promise<void> {
  await js(page, `document.querySelector(${q(selector)}).scrollIntoView({block: 'center'})`)
  await js(page, 'new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))')
  await page.click(selector)
}

/** The visible part only: a full-page shot brings every card into view, and so makes every HTML frame. */
async function viewportShot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, {recursive: true})
  await page.screenshot({path: join(SCREENSHOTS, `${name}.png`) as `${string}.png`})
}

function subscribers(server: BusServer, count: number): Promise<void> {
  return until(() => server.counters().subscribers === count, `${count} subscribers (have ${server.counters().subscribers})`)
}

async function published(server: BusServer, channel: string, body: Buffer | string, type = 'text/plain; charset=utf-8'): Promise<void> {
  const reply = await publish(server, channel, body, type)
  assert.equal(reply.status, 204, reply.body.toString())
}

for (const name of ['chromium', 'firefox'] as BrowserName[]) {
  describe(`viewer (${name}) @slow`, function () {
    this.timeout(60000)
    const suite = browserSuite(name)
    /** Uncaught exceptions and CSP refusals in any page: a page that works must have none. */
    const pageErrors = suite.problems
    const inTemp = tempFolder('msgbus-viewer-')
    /** Tests of what the browser itself decides (origins, sandboxes, fetch): run in both; the rest in Chromium. */
    const both = it
    // Not registered in Firefox at all: they do not apply there, so they are not skipped tests either.
    const chromiumOnly = name === 'chromium' ? it : (() => undefined) as unknown as typeof it

    afterEach(stopAll)

    async function newPage(): Promise<Page> {
      const page = await suite.page()
      // Firefox's WebDriver BiDi has no viewport emulation yet; it keeps its own 800 x 600.
      if (name === 'chromium') await page.setViewport({width: 1000, height: 800})
      return page
    }

    async function open(url: string, page?: Page): Promise<Page> {
      page ??= await newPage()
      await page.goto(url, {waitUntil: 'domcontentloaded'})
      return page
    }

    /** Light, then dark: the page and what messages show must read well in both. */
    async function bothSchemes(page: Page, shot: string): Promise<void> {
      // A page behind another tab (one a link opened) draws nothing to take; scrolled down, the sticky header would show mid-page.
      await page.bringToFront()
      await js(page, 'window.scrollTo(0, 0)')
      // Firefox's BiDi cannot emulate a colour scheme: its pages are seen in light only.
      if (name === 'firefox') return screenshot(page, shot)
      await page.emulateMediaFeatures([{name: 'prefers-color-scheme', value: 'light'}])
      await screenshot(page, shot)
      await page.emulateMediaFeatures([{name: 'prefers-color-scheme', value: 'dark'}])
      await screenshot(page, `${shot}-dark`)
      await page.emulateMediaFeatures([{name: 'prefers-color-scheme', value: 'light'}])
    }

    async function live(page: Page): Promise<void> {
      await page.waitForSelector('#status[data-state="live"]')
    }

    /** A viewer on the channel, live, and the server holding its subscription. */
    async function viewer(server: BusServer, path: string, page?: Page): Promise<Page> {
      const before = server.counters().subscribers
      page = await open(`${server.url()}/msgbus/${path}`, page)
      await live(page)
      await subscribers(server, before + 1)
      return page
    }

    function cardCount(page: Page): Promise<number> {
      return js(page, `document.querySelectorAll('li.message').length`)
    }

    both('S2: SVG shows from a data: URL; no active type gets a blob: URL of this origin that renders when opened', async () => {
      const server = await startBus()
      const page = await viewer(server, 'svg')
      const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40"><rect width="120" height="40" fill="#c33"/><script>document.title = "ran"</script></svg>'
      await published(server, 'svg', svg, 'image/svg+xml')
      await published(server, 'svg', '<b>hi</b><script>parent.document.title = "ran"</script>', 'text/html')
      await published(server, 'svg', '<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>', 'application/xml')
      await published(server, 'svg', Buffer.from('<html><script>alert(1)</script></html>'), 'application/x-unknown')
      await published(server, 'svg', png(30, 20, [40, 90, 200]), 'image/png')
      await published(server, 'svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'), 'image/tiff')
      await waitFor(page, `document.getElementById('count').textContent === '6'`)

      const svgSource = await js<string>(page, `document.querySelector('li[data-type="image/svg+xml"] img').src`)
      assert.match(svgSource, /^data:image\/svg\+xml;base64,/)
      await waitFor(page, `document.querySelector('li[data-type="image/svg+xml"] img').naturalWidth === 120`)
      assert.match(await js<string>(page, `document.querySelector('li[data-type="image/tiff"] img').src`), /^data:image\/tiff;base64,/)
      assert.equal(await js<string>(page, `document.querySelector('li[data-type="image/png"] img').src.slice(0, 5)`), 'blob:')

      // Every download link gets its blob when about to be used: hover them all, then open every blob: URL
      // in a tab of its own, as "open in new tab" would: only a raster picture may render; the rest is a download.
      for (const link of await page.$$('a.download')) await link.hover()
      const blobs = await js<Array<[string, string, string]>>(
        page,
        `[...document.querySelectorAll('[src^="blob:"], [href^="blob:"]')].map((node) => [node.closest('li').dataset.type, node.localName, node.src || node.href])`,
      )
      assert.equal(blobs.filter(([, tag]) => tag === 'a').length, 6, 'a download link on every card')
      const opener = await page.browserContext().newPage()
      for (const [type, tag, url] of blobs) {
        if (tag === 'a' && name !== 'chromium') continue
        const rendered = await opener.goto(url, {timeout: 5000}).then(
          () => js<string>(opener, 'document.contentType'),
          () => 'not rendered',
        )
        if (tag === 'a') assert.equal(rendered, 'not rendered', `the download of ${type} opened in a tab`)
        else assert.ok(RASTER.includes(rendered), `${type} shown from a blob: that renders as ${rendered}`)
      }

      // Opened by itself, the SVG's data: URL has an opaque origin: its script, if it runs, reaches nothing of the bus.
      const tab = await newPage()
      await tab.goto(svgSource).catch(() => {})
      const origin = await js<string>(tab, 'self.origin').catch(() => 'blocked')
      assert.ok(origin === 'null' || origin === 'blocked', `the SVG opened in a tab has the origin ${origin}`)
      assert.equal(await page.title(), 'svg · msgbus', 'no script ran in the page')
      // A page behind another tab draws nothing, so a screenshot of it would wait for ever.
      await Promise.all([tab.close(), opener.close()])
      await page.bringToFront()
      await bothSchemes(page, `viewer-s2-${name}`)
      assert.deepEqual(pageErrors, [])
    })

    both('1: HTML shows sandboxed without scripts; its links open in a new tab and the message stays', async () => {
      const server = await startBus()
      const page = await viewer(server, 'links')
      const target = `${server.url()}/msgbus/elsewhere?format=html`
      const html = `<h1>Hello from curl</h1><p><a id="go" href="${target}">a link</a></p><script>document.body.dataset.ran = "yes"</script>`
      const {code, stderr} = await curl(['-H', 'Content-Type: text/html', '--data-binary', html, `${server.url()}/msgbus/links`])
      assert.equal(code, 0, stderr)
      await page.waitForSelector('li[data-type="text/html"] iframe')
      const sandbox = String(await js(page, `document.querySelector('li[data-type="text/html"] iframe').getAttribute('sandbox')`)).split(/\s+/)
      assert.deepEqual(sandbox.sort(), ['allow-popups', 'allow-popups-to-escape-sandbox'])
      // By the frame list, not the element: Firefox's BiDi cannot yet go from an <iframe> to its frame.
      await until(() => page.frames().some((frame) => frame.url() === 'about:srcdoc'), 'the message frame')
      const frame = page.frames().find((frame) => frame.url() === 'about:srcdoc')!
      await frame.waitForSelector('h1')
      assert.equal(await frame.evaluate('document.body.dataset.ran ?? null'), null, 'its script did not run')

      const opened = new Promise<string>((resolve) => suite.browser.on('targetcreated', (created) => resolve(created.url())))
      // A click where the link shows, as a person would (Firefox's BiDi cannot click into a frame by selector).
      const [x, y] = await frame.evaluate(`(() => { const box = document.getElementById('go').getBoundingClientRect(); return [box.x + box.width / 2, box.y + box.height / 2] })()`) as [number, number]
      const [left, top] = await js<[number, number]>(page, `(() => { const box = document.querySelector('li[data-type="text/html"] iframe').getBoundingClientRect(); return [box.x, box.y] })()`)
      await page.mouse.click(left + x, top + y)
      const url = await Promise.race([opened, sleep(5000).then(() => 'no new tab')])
      assert.ok(url === target || url === 'about:blank', `a new tab opened: ${url}`)
      // The message is still there, not a blocked page in its place.
      await sleep(300)
      assert.equal(await frame.evaluate(`document.querySelector('h1')?.textContent ?? null`), 'Hello from curl')
      assert.equal(await js(page, `document.querySelector('li[data-type="text/html"] iframe').contentWindow.location.href`).catch(() => 'cross-origin'), 'cross-origin')

      // Sized to its content, not a fixed 256 px slab: a heading and a line.
      const height = await js<number>(page, `document.querySelector('li[data-type="text/html"] .html').getBoundingClientRect().height`)
      assert.ok(height >= 60 && height <= 200, `frame box ${height} px`)
      await bothSchemes(page, `viewer-html-${name}`)
      assert.deepEqual(pageErrors, [])
    })

    chromiumOnly('keeps the hooks scripts use: channel, filters, status, count, and cards newest first with their details', async () => {
      const server = await startBus()
      const page = await viewer(server, 'foo')
      const texts = await viewer(server, '?format=html&type=text/*')
      assert.equal(await js(page, `document.getElementById('channel').textContent`), 'foo')
      assert.equal(await js(texts, `document.getElementById('channel').textContent`), 'every channel')
      assert.equal(await js(texts, `document.querySelector('#filters-type dd').textContent`), 'text/*')
      assert.equal(await js(texts, `document.getElementById('filters-sender').hidden`), true)
      await published(server, 'foo', '<h1>hi</h1>', 'text/html')
      const carol = await curl(['-u', 'carol:', '-H', 'Content-Type: text/plain; charset=utf-8', '--data-binary', 'plain <b>text</b>, not markup', `${server.url()}/msgbus/foo`])
      assert.equal(carol.code, 0, carol.stderr)
      await published(server, 'foo', png(64, 48, [30, 160, 90]), 'image/png')
      await waitFor(page, `document.getElementById('count').textContent === '3'`)
      assert.deepEqual(await js(page, `[...document.querySelectorAll('li.message')].map((item) => item.dataset.type)`), ['image/png', 'text/plain', 'text/html'])
      assert.equal(await js(page, `document.querySelector('li[data-type="text/plain"] pre').textContent`), 'plain <b>text</b>, not markup')
      assert.equal(await js(page, `document.querySelector('li[data-type="text/plain"]').dataset.sender`), 'carol')
      for (const item of await js<Array<[string, string, string, string, string]>>(
        page,
        `[...document.querySelectorAll('li.message')].map((item) => [item.querySelector('.channel').textContent, item.querySelector('.sender').textContent, item.querySelector('time').getAttribute('datetime'), item.querySelector('.id').textContent, item.dataset.id])`,
      )) {
        assert.equal(item[0], 'foo')
        assert.match(item[1], /^(carol|anonymous)$/)
        assert.match(item[2], /^\d{4}-\d\d-\d\dT[\d:.]+Z$/)
        assert.match(item[3], /^\d+-\d+$/)
        assert.equal(item[3], item[4])
      }
      await waitFor(page, `document.querySelector('li[data-type="image/png"] img').naturalWidth === 64`)
      await waitFor(texts, `document.getElementById('count').textContent === '2'`)
      await bothSchemes(page, 'viewer-hooks')
      assert.deepEqual(pageErrors, [])
    })

    chromiumOnly('2: stays responsive while 200 HTML messages arrive at 100 a second, making frames only for what is in view', async () => {
      const server = await startBus()
      const page = await viewer(server, 'burst')
      await js(
        page,
        `{
          const perf = {maxGap: 0, longest: 0}
          window.perf = perf
          let last = performance.now()
          const tick = (now) => {
            perf.maxGap = Math.max(perf.maxGap, now - last)
            last = now
            requestAnimationFrame(tick)
          }
          requestAnimationFrame(tick)
          new PerformanceObserver((list) => {
            for (const entry of list.getEntries()) perf.longest = Math.max(perf.longest, entry.duration)
          }).observe({type: 'longtask'})
        }`,
      )
      const started = Date.now()
      const sends: Array<Promise<void>> = []
      for (let i = 0; i < 200; i++) {
        const wait = started + i * 10 - Date.now()
        if (wait > 0) await sleep(wait)
        const html = `<h1>Reading ${i}</h1><p>Temperature <b>${20 + (i % 7)}.${i % 10} °C</b>, humidity ${40 + (i % 20)} %.</p><ul><li>kitchen</li><li>hall</li></ul>`
        sends.push(published(server, 'burst', html, 'text/html; charset=utf-8'))
      }
      await Promise.all(sends)
      await waitFor(page, `document.getElementById('count').textContent === '200'`, 5000)
      await sleep(1000)
      const perf = await js<{maxGap: number; longest: number}>(page, 'window.perf')
      console.log(`      longest task ${perf.longest.toFixed(0)} ms, longest frame gap ${perf.maxGap.toFixed(0)} ms`)
      // It was 1.4-3 s with a frame per message made at once; this machine may be busy, so the bound is loose.
      assert.ok(perf.maxGap < 1000, `longest frame gap ${perf.maxGap} ms`)
      assert.equal(await cardCount(page), 200)
      const frames = await js<number>(page, `document.querySelectorAll('iframe').length`)
      assert.ok(frames >= 1 && frames <= 15, `${frames} frames made, for the cards in view only`)
      await viewportShot(page, 'viewer-burst')
      await page.emulateMediaFeatures([{name: 'prefers-color-scheme', value: 'dark'}])
      await viewportShot(page, 'viewer-burst-dark')
      assert.deepEqual(pageErrors, [])
    })

    chromiumOnly('3: pause and resume, clear, the filter box, and a "new" chip when scrolled away from the top', async () => {
      const server = await startBus()
      const page = await viewer(server, 'kitchen')
      for (let i = 1; i <= 12; i++) await published(server, 'kitchen', `reading ${i}: ${i % 3 === 0 ? 'kettle on' : 'quiet'}\nline two\nline three`)
      await waitFor(page, `document.querySelectorAll('li.message').length === 12`)

      await page.type('#search', 'kettle')
      await waitFor(page, `document.querySelectorAll('li.message:not([hidden])').length === 4`)
      assert.match(await js<string>(page, `document.getElementById('shown').textContent`), /^showing 4 of 12 matching “kettle”/)
      await screenshot(page, 'viewer-filter')
      await page.click('#search', {count: 3})
      await page.keyboard.press('Backspace')
      await waitFor(page, `document.querySelectorAll('li.message:not([hidden])').length === 12`)
      assert.equal(await js(page, `document.getElementById('shown').hidden`), true)

      await page.click('#pause')
      await published(server, 'kitchen', 'while paused 1')
      await published(server, 'kitchen', 'while paused 2')
      await waitFor(page, `document.getElementById('count').textContent === '14'`)
      await waitFor(page, `/2 waiting/.test(document.getElementById('shown').textContent)`)
      assert.equal(await cardCount(page), 12, 'nothing added while paused')
      assert.equal(await js(page, `document.getElementById('status').dataset.state`), 'paused')
      await screenshot(page, 'viewer-paused')
      await page.click('#pause')
      await waitFor(page, `document.querySelectorAll('li.message').length === 14`)
      assert.equal(await js(page, `document.querySelector('li.message pre').textContent`), 'while paused 2')

      // Scrolled down, new messages do not move what is read; a chip says how many came and goes back up.
      await js(page, 'window.scrollTo(0, 900)')
      // Once the page has laid out and painted the scroll (two frames), not after a guessed while.
      await js(page, 'new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))')
      const anchored = await js<string>(page, `document.elementFromPoint(300, 500).closest('li').dataset.id`)
      await published(server, 'kitchen', 'new 1')
      await published(server, 'kitchen', 'new 2')
      await waitFor(page, `document.getElementById('new-chip').textContent === '2 new ↑' && !document.getElementById('new-chip').hidden`)
      assert.equal(await js(page, `document.elementFromPoint(300, 500).closest('li').dataset.id`), anchored, 'the card read stays in place')
      await viewportShot(page, 'viewer-new-chip')
      await page.click('#new-chip')
      await waitFor(page, `window.scrollY === 0 && document.getElementById('new-chip').hidden`)

      await page.click('#clear')
      assert.equal(await cardCount(page), 0)
      assert.equal(await js(page, `document.getElementById('shown').textContent`), 'showing 0 of 16')
      await published(server, 'kitchen', 'after clearing')
      await waitFor(page, `document.querySelectorAll('li.message').length === 1`)
      await bothSchemes(page, 'viewer-cleared')
      assert.deepEqual(pageErrors, [])
    })

    chromiumOnly('3: keeps at most 500 cards and 64 MiB of bodies, and says how many it shows', async function () {
      // Generous waits: 72 MiB through one browser's SSE parser took 30 s once with two full suites running beside it.
      this.timeout(240000)
      const server = await startBus({maxMessageSize: 8 * 1024 * 1024})
      const page = await viewer(server, 'many')
      const sends: Array<Promise<void>> = []
      for (let i = 1; i <= 510; i++) sends.push(published(server, 'many', `message ${i}`))
      await Promise.all(sends)
      await waitFor(page, `document.getElementById('count').textContent === '510'`, 60000)
      assert.equal(await cardCount(page), 500)
      assert.match(await js<string>(page, `document.getElementById('shown').textContent`), /^showing 500 of 510 \(10 older let go/)

      // 12 bodies of 6 MiB are 72 MiB: the oldest go, so what is held stays under 64 MiB.
      await page.click('#clear')
      const big = Buffer.alloc(6 * 1024 * 1024, 0xab)
      for (let i = 0; i < 12; i++) await published(server, 'many', big, 'application/octet-stream')
      await waitFor(page, `document.getElementById('count').textContent === '522'`, 120000)
      await waitFor(page, `document.querySelectorAll('li.message').length === 10`, 20000)
      await screenshot(page, 'viewer-capped')
      assert.deepEqual(pageErrors, [])
    })

    both('4: a refused stream says why and stops retrying; a 5xx is retried until the server is back', async () => {
      const port = await freePort()
      let server = await startBus({port})
      const page = await newPage()
      const streams: string[] = []
      page.on('request', (request) => {
        if (request.url().includes('format=sse')) streams.push(request.url())
      })
      await viewer(server, 'locked', page)

      // The server comes back behind a proxy's 503 first: retried, with the reason shown.
      await server.stop(100)
      const proxy = createHttpServer((req, res) => {
        res.writeHead(503, {'Content-Type': 'text/plain'})
        res.end('server restarting\n')
      })
      await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve))
      await waitFor(page, `/503 server restarting; trying again/.test(document.querySelector('#problem span').textContent)`, 15000)
      assert.equal(await js(page, `document.getElementById('status').dataset.state`), 'reconnecting')
      await screenshot(page, `viewer-retrying-${name}`)
      proxy.closeAllConnections()
      await new Promise((resolve) => proxy.close(resolve))

      let refusal = 'The server refused the stream: 401 authentication required'
      if (name === 'chromium') {
        // Now with a secret the page does not have: the browser asks for a password (here: a wrong one, then
        // the dialog cancelled, as a person would), and the page shows the 401 and does not ask again.
        await page.authenticate({username: 'someone', password: 'wrong'})
        server = await startBus({port, secret: 's3cret'})
      } else {
        // Firefox's BiDi cannot answer a password dialog; a refusal without one tells the same.
        refusal = 'The server refused the stream: 403 this channel is closed'
        const refusing = createHttpServer((req, res) => {
          res.writeHead(403, {'Content-Type': 'text/plain; charset=utf-8'})
          res.end('this channel is closed\n')
        })
        await new Promise<void>((resolve) => refusing.listen(port, '127.0.0.1', resolve))
        after(() => new Promise((resolve) => refusing.close(resolve)))
      }
      await waitFor(page, `document.getElementById('status').dataset.state === 'failed'`, 20000)
      assert.equal(await js(page, `document.querySelector('#problem span').textContent`), refusal)
      const tries = streams.length
      await sleep(2500)
      assert.equal(streams.length, tries, 'no retry after a 4xx')
      await bothSchemes(page, `viewer-refused-${name}`)
      // Firefox reports each stream it could not open while the server was down; nothing else may show.
      assert.deepEqual(pageErrors.filter((error) => !/can.t establish a connection to the server/.test(error)), [])
    })

    both('4: a filter the server refuses: the page shows the server\'s reason, and waits', async () => {
      const server = await startBus()
      const patterns = Array.from({length: 40}, (_, i) => `t${i}/*`).join(',')
      const page = await open(`${server.url()}/msgbus/cams?type=${patterns}`)
      await waitFor(page, `document.getElementById('status').dataset.state === 'failed'`, 10000)
      assert.equal(
        await js(page, `document.querySelector('#problem span').textContent`),
        'The server refused the stream: 400 the type= filter: a list has at most 32 patterns, not 40',
      )
      assert.equal(server.counters().subscribers, 0)
      assert.equal(await js(page, `document.getElementById('retry').hidden`), false, 'a Retry button, for after the URL is fixed')
      await screenshot(page, `viewer-bad-filter-${name}`)
    })

    both('4: a filter of only negated patterns is said to match nothing', async () => {
      const server = await startBus()
      const page = await viewer(server, 'cams?type=!image/*&sender=!bob,!eve')
      const warning = await js<string>(page, `document.getElementById('filter-warning').hidden ? '' : document.getElementById('filter-warning').textContent`)
      assert.match(warning, /type=!image\/\* can never match/)
      assert.match(warning, /sender=!bob,!eve can never match/)
      const fine = await viewer(server, 'cams?type=*,!image/*')
      assert.equal(await js(fine, `document.getElementById('filter-warning').hidden`), true)
      await screenshot(page, `viewer-never-matches-${name}`)
      assert.deepEqual(pageErrors, [])
    })

    chromiumOnly('5: copy body, copy as curl (which republishes the message as it was), download names, full-size images, size, date, empty and long bodies', async () => {
      const server = await startBus()
      const page = await newPage()
      await page.browserContext().overridePermissions(server.url(), ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write'])
      await viewer(server, 'notes/today', page)
      const tricky = `it's "quoted" $HOME \`date\` \\n\nsecond line ✓`
      await published(server, 'notes/today', tricky, 'text/plain; charset=utf-8; name="../../etc/notes.txt"')
      await published(server, 'notes/today', '@/etc/passwd', 'text/plain')
      await published(server, 'notes/today', png(1600, 90, [220, 120, 30]), 'image/png')
      await published(server, 'notes/today', '', 'application/json')
      await published(server, 'notes/today', Array.from({length: 100}, (_, i) => `line ${i + 1}`).join('\n'), 'text/plain')
      await waitFor(page, `document.getElementById('count').textContent === '5'`)
      const clipboard = (): Promise<string> => js(page, 'navigator.clipboard.readText()')
      // By id: each republished message adds a card on top.
      const [longId, emptyId, pictureId, atId, trickyId] = await js<string[]>(page, `[...document.querySelectorAll('li.message')].map((item) => item.dataset.id)`)
      const card = (id: string): string => `li.message[data-id="${id}"]`

      await press(page, `${card(trickyId)} .copy-body`)
      await waitFor(page, `document.querySelector(${q(`${card(trickyId)} .copy-body`)}).textContent === 'copied'`)
      assert.equal(await clipboard(), tricky)

      // Each "copy as curl", run by a shell, publishes the same type and bytes again.
      const watch = await Subscription.open(server, '/msgbus/notes/today')
      for (const [id, what] of [[trickyId, 'text'], [atId, 'text starting with @'], [pictureId, 'picture']]) {
        await press(page, `${card(id)} .copy-curl`)
        await waitFor(page, `document.querySelector(${q(`${card(id)} .copy-curl`)}).textContent === 'copied'`)
        const command = await clipboard()
        const result = await run('sh', ['-c', command])
        assert.equal(result.code, 0, `${what}: ${command}\n${result.stderr}`)
      }
      const parts = await watch.waitParts(3)
      watch.close()
      assert.equal(parts[0].body.toString(), tricky)
      assert.equal(parts[0].headers['content-type'], 'text/plain; charset=utf-8; name="../../etc/notes.txt"')
      assert.equal(parts[1].body.toString(), '@/etc/passwd')
      assert.deepEqual(parts[2].body, png(1600, 90, [220, 120, 30]))
      assert.equal(parts[2].headers['content-type'], 'image/png')

      // Downloads: the name the message gave (no folders), else one made of the id and type.
      const download = (id: string): Promise<string> => js(page, `document.querySelector(${q(`${card(id)} a.download`)}).download`)
      assert.equal(await download(trickyId), 'notes.txt')
      assert.equal(await download(pictureId), `message-${pictureId}.png`)
      assert.equal(await download(emptyId), `message-${emptyId}.json`)
      assert.equal(await download(atId), `message-${atId}.txt`)

      // Size and date on every card; an empty body says so; long text is cut until asked.
      const metas = await js<Array<[string, string]>>(page, `[...document.querySelectorAll('li.message')].map((item) => [item.querySelector('.size').textContent, item.querySelector('time').textContent])`)
      assert.equal(metas.length, 8)
      for (const [size, date] of metas) {
        assert.match(size, /^\d+(\.\d)? (bytes?|KiB|MiB)$/)
        assert.match(date, /\d{1,4}\/\d{1,2}\/\d{2,4}.*\d:\d\d/)
      }
      assert.equal(await js(page, `document.querySelector(${q(`${card(emptyId)} .body`)}).textContent`), '(empty)')
      const lines = (): Promise<number> => js(page, `document.querySelector(${q(`${card(longId)} pre`)}).textContent.split('\\n').length`)
      assert.equal(await lines(), 40)
      await press(page, `${card(longId)} .more`)
      assert.equal(await lines(), 100)
      await press(page, `${card(longId)} .more`)
      assert.equal(await lines(), 40)
      await screenshot(page, 'viewer-actions')
      await page.emulateMediaFeatures([{name: 'prefers-color-scheme', value: 'dark'}])
      await screenshot(page, 'viewer-actions-dark')

      // A picture opens at full size on click, and closes again.
      await press(page, 'li[data-type="image/png"] .zoom')
      await waitFor(page, `!document.getElementById('lightbox').hidden && document.querySelector('#lightbox img').getBoundingClientRect().width === 1600`)
      await viewportShot(page, 'viewer-full-size')
      await page.keyboard.press('Escape')
      assert.equal(await js(page, `document.getElementById('lightbox').hidden`), true)
      assert.deepEqual(pageErrors, [])
    })

    chromiumOnly('6: publishes text and files from the page, shows refusals, and is off on the every-channel page', async () => {
      const server = await startBus({maxMessageSize: 64 * 1024})
      const page = await viewer(server, 'board')
      await press(page, '#publish-box summary')
      await page.type('#publish-text', '{"hello": "board"}')
      await page.select('#publish-type', 'application/json')
      await press(page, '#publish button[type="submit"]')
      await waitFor(page, `document.querySelector('li[data-type="application/json"] pre')?.textContent === '{\\n  "hello": "board"\\n}'`)
      assert.match(await js<string>(page, `document.getElementById('publish-result').textContent`), /^published \d+-\d+ to 1 subscriber$/)
      assert.equal(await js(page, `document.getElementById('publish-text').value`), '')

      // Files go with their type and their name, quoted; a name beyond ASCII in RFC 2231's form.
      writeFileSync(inTemp('my "notes".txt'), 'file one')
      writeFileSync(inTemp('café.csv'), 'a,b\n1,2')
      const watch = await Subscription.open(server, '/msgbus/board')
      const input = (await page.$('#publish-files'))!
      await input.uploadFile(inTemp('my "notes".txt'), inTemp('café.csv'))
      const parts = await watch.waitParts(2)
      watch.close()
      assert.equal(parts[0].headers['content-type'], 'text/plain; name="my \\"notes\\".txt"')
      assert.equal(parts[0].body.toString(), 'file one')
      assert.equal(parts[1].headers['content-type'], "text/csv; name*=UTF-8''caf%C3%A9.csv")
      await waitFor(page, `document.querySelectorAll('li.message').length === 3`)
      assert.deepEqual(await js(page, `[...document.querySelectorAll('a.download')].slice(0, 2).map((link) => link.download)`), ['café.csv', 'my _notes_.txt'])

      // Pasted, not typed: 70 K keystrokes take minutes.
      await js(page, `document.getElementById('publish-text').value = 'x'.repeat(70 * 1024)`)
      await press(page, '#publish button[type="submit"]')
      await waitFor(page, `/^refused: 413 /.test(document.getElementById('publish-result').textContent)`)
      await bothSchemes(page, 'viewer-publish')

      const every = await viewer(server, '')
      assert.equal(await js(every, `document.getElementById('publish-fields').disabled`), true)
      assert.equal(await js(every, `document.getElementById('publish-note').hidden`), false)
      await every.click('#publish-box summary')
      await screenshot(every, 'viewer-publish-every-channel')
      assert.deepEqual(pageErrors, [])
    })

    chromiumOnly('6: notifications only after a click, an unread count in the title while hidden, and camera mode', async () => {
      const server = await startBus()
      const page = await newPage()
      // Records the notifications the page makes (the browser's own are not visible to a test).
      await page.evaluateOnNewDocument(`{
        window.notices = []
        const Real = window.Notification
        window.Notification = class extends Real {
          constructor(title, options) {
            super(title, options)
            window.notices.push([title, options.body])
          }
        }
      }`)
      await page.browserContext().overridePermissions(server.url(), ['notifications'])
      await viewer(server, 'cam', page)
      assert.equal(await js(page, `document.getElementById('notify').getAttribute('aria-pressed')`), 'false')
      await page.click('#notify')
      await waitFor(page, `document.getElementById('notify').getAttribute('aria-pressed') === 'true'`)

      // Another tab in front hides this one.
      const other = await page.browserContext().newPage()
      await other.bringToFront()
      await waitFor(page, 'document.hidden')
      await published(server, 'cam', 'door opened')
      await published(server, 'cam', 'door closed')
      await waitFor(page, `document.title === '(2) cam · msgbus'`)
      assert.deepEqual(await js(page, 'window.notices'), [['cam · msgbus', 'text/plain from anonymous: door opened']])
      await page.bringToFront()
      await waitFor(page, `document.title === 'cam · msgbus'`)
      await other.close()

      await page.click('#camera')
      for (const width of [40, 80, 120]) await published(server, 'cam', png(width, 30, [width, 100, 160]), 'image/png')
      await published(server, 'cam', 'motion stopped')
      await published(server, 'cam', png(160, 30, [200, 100, 160]), 'image/png')
      await waitFor(page, `document.getElementById('count').textContent === '7'`)
      assert.deepEqual(await js(page, `[...document.querySelectorAll('li.message')].map((item) => item.dataset.type)`), ['text/plain', 'image/png', 'text/plain', 'text/plain'])
      await waitFor(page, `document.querySelector('li[data-type="image/png"] img').naturalWidth === 160`)
      await bothSchemes(page, 'viewer-camera')
      assert.deepEqual(pageErrors, [])
    })
  })
}
