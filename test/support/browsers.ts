// Helpers for the browser tests: Debian's Chromium and Firefox ESR, both
// driven by puppeteer-core (Chromium over CDP, Firefox over WebDriver BiDi;
// no browser download), pictures made on the spot, screenshots kept.
import {existsSync, mkdirSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {crc32, deflateSync} from 'node:zlib'
import puppeteer, {type Browser, type BrowserContext, type Page} from 'puppeteer-core'
import {ROOT} from './harness.js'

export type BrowserName = 'chromium' | 'firefox'

/** Each browser, where Debian installs it (scripts/test-tools.sh installs both). */
export const BROWSERS: Record<BrowserName, {path: string; package: string}> = {
  chromium: {path: '/usr/bin/chromium', package: 'chromium'},
  firefox: {path: '/usr/bin/firefox-esr', package: 'firefox-esr'},
}

export const SCREENSHOTS = join(ROOT, 'test-output', 'browser')

export function hasBrowser(name: BrowserName): boolean {
  return existsSync(BROWSERS[name].path)
}

/** Why a browser's tests are skipped, printed by the suite that skips them. */
export function missing(name: BrowserName): string {
  return `skipped: no browser at ${BROWSERS[name].path} (Debian: apt-get install ${BROWSERS[name].package})`
}

/** Which browser each launched one is, for what only one of them needs. */
const launched = new WeakMap<Browser, BrowserName>()

/**
 * Starts a headless browser with a fresh profile. Chromium's background
 * networking is off: this machine's closed network refuses it, many
 * connections at a time. Firefox gets the same quiet through preferences,
 * and saves downloads in a folder of its own, removed when it closes (its
 * WebDriver BiDi cannot refuse them, as Chromium's profiles do).
 */
export async function launch(name: BrowserName): Promise<Browser> {
  if (name === 'chromium') {
    const browser = await puppeteer.launch({
      browser: 'chrome',
      executablePath: BROWSERS.chromium.path,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    })
    launched.set(browser, name)
    return browser
  }

  const downloads = mkdtempSync(join(tmpdir(), 'msgbus-firefox-downloads-'))
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: BROWSERS.firefox.path,
    headless: true,
    extraPrefsFirefox: {
      'app.update.enabled': false,
      'browser.safebrowsing.malware.enabled': false,
      'browser.safebrowsing.phishing.enabled': false,
      'network.captive-portal-service.enabled': false,
      'network.connectivity-service.enabled': false,
      // A URL with user:password@ would otherwise ask "log in to this site?" first.
      'network.http.phishy-userpass-length': 255,
      'browser.download.folderList': 2,
      'browser.download.dir': downloads,
      'browser.download.useDownloadDir': true,
    },
  })
  browser.once('disconnected', () => rmSync(downloads, {recursive: true, force: true}))
  launched.set(browser, name)
  return browser
}

/**
 * A browser profile of its own (storage, cached passwords, blob URLs), as
 * another person's browser. A download a test opens never reaches the home
 * folder: Chromium's are refused, Firefox's land in its own folder.
 */
export function newProfile(browser: Browser): Promise<BrowserContext> {
  return browser.createBrowserContext(launched.get(browser) === 'chromium' ? {downloadBehavior: {policy: 'deny'}} : {})
}

/**
 * Keeps what the page looks like now, to see what a failing (or passing) test
 * saw. A picture is evidence, not an assertion: a page that a cross-site form
 * has just moved to another renderer is detached for a moment ("Not attached
 * to an active page"), so it tries once more and then only says so.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, {recursive: true})
  const path = join(SCREENSHOTS, `${name}.png`) as `${string}.png`
  for (let attempt = 1; ; attempt++) {
    try {
      await page.screenshot({path, fullPage: true})
      return
    } catch (error) {
      if (attempt === 2) {
        process.stderr.write(`      (no screenshot ${name}: ${(error as Error).message})\n`)
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  }
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([length, body, crc])
}

/** A valid PNG of one colour, so a test can tell pictures apart by their size. */
export function png(width: number, height: number, [r, g, b]: [number, number, number]): Buffer {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header[8] = 8 // bits per sample
  header[9] = 2 // truecolour RGB
  const row = Buffer.alloc(1 + width * 3) // filter byte 0 (none), then the pixels
  for (let x = 0; x < width; x++) row.set([r, g, b], 1 + x * 3)
  const pixels = Buffer.concat(Array.from({length: height}, () => row))
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(pixels)),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

/** What the browser tests of one suite share: one browser, a profile of its own per page, and what went wrong in the pages. */
export interface BrowserSuite {
  /** The suite's browser, launched by its `before`. */
  readonly browser: Browser
  /** A profile of its own (see newProfile), closed after the test. */
  profile(): Promise<BrowserContext>
  /** A page in a profile of its own, watched for problems. */
  page(options?: WatchOptions): Promise<Page>
  /** Watches a page: its uncaught exceptions and CSP refusals go to `problems`. */
  watch(page: Page, options?: WatchOptions): void
  /** Uncaught exceptions and CSP refusals in the watched pages of this test: a page that works has none. */
  readonly problems: string[]
}

export interface WatchOptions {
  /** Console warnings count too (Firefox warns of a CSP directive it does not know); else errors only. */
  warnings?: boolean
}

/**
 * Sets up a describe block's browser: launched before its tests (which are
 * skipped, saying why, when the browser is not installed), closed after
 * them, and the profiles of each test closed after it.
 */
export function browserSuite(name: BrowserName): BrowserSuite {
  let browser: Browser | undefined
  const profiles: BrowserContext[] = []
  const problems: string[] = []
  before(async function () {
    if (!hasBrowser(name)) {
      console.log(`      ${missing(name)}`)
      this.skip()
    }

    browser = await launch(name)
  })
  after(async () => {
    await browser?.close()
  })
  afterEach(async () => {
    await Promise.all(profiles.splice(0).map((profile) => profile.close()))
    problems.length = 0
  })

  const suite: BrowserSuite = {
    get browser(): Browser {
      if (!browser) throw new Error(`${name} is not running: browserSuite() starts it in a before hook`)
      return browser
    },
    async profile() {
      const profile = await newProfile(suite.browser)
      profiles.push(profile)
      return profile
    },
    async page(options) {
      const page = await (await suite.profile()).newPage()
      page.setDefaultTimeout(8000)
      suite.watch(page, options)
      return page
    },
    watch(page, {warnings = false} = {}) {
      page.on('pageerror', (error) => problems.push(`${page.url()}: ${(error as Error).message ?? error}`))
      // CSP refusals come as console messages (Chromium logs them from its Log domain).
      page.on('console', (message) => {
        if ((warnings || message.type() === 'error') && /Content.Security.Policy|Refused to/i.test(message.text())) {
          problems.push(`${page.url()}: console ${message.type()}: ${message.text()}`)
        }
      })
    },
    problems,
  }
  return suite
}
