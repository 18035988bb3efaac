// The msgbus chat demo: every message is a plain publish to one channel, so
// `msgbus send chatdemo` and `msgbus dump chatdemo` take part from a shell.
const BUS_URL = '/msgbus/chatdemo'
const NICK_KEY = 'msgbus-chat-nick'
const MAX_SHOWN = 500
const RETRY_MS = [2000, 4000, 8000, 15000, 30000]
/** How far back a page that opens shows the conversation (as much of it as the server keeps). */
const BACKLOG = '1h'

const log = document.getElementById('log')
const nickInput = document.getElementById('nick')
const messageInput = document.getElementById('message')
const composer = document.getElementById('composer')
const fileInput = document.getElementById('file')
const statusEl = document.getElementById('status')
const errorEl = document.getElementById('error')
const dropzone = document.getElementById('dropzone')

// --- nickname ---------------------------------------------------------------

/** A Basic user name ends at the first colon and may hold no control characters. */
function cleanNick(text) {
  return text.replace(/[\u0000-\u001f\u007f:]/g, '').trim()
}

function currentNick() {
  return cleanNick(nickInput.value)
}

function rememberNick() {
  nickInput.value = currentNick()
  if (nickInput.value) localStorage.setItem(NICK_KEY, nickInput.value)
}

// A made-up name is kept too, so a reload does not turn you into someone else.
nickInput.value = localStorage.getItem(NICK_KEY) ?? `guest-${Math.floor(1000 + Math.random() * 9000)}`
rememberNick()
nickInput.addEventListener('change', rememberNick)

// --- sending ----------------------------------------------------------------

/** btoa takes Latin-1 only, so encode the name as UTF-8 bytes first. */
function basicAuth(user) {
  const bytes = new TextEncoder().encode(`${user}:`)
  return `Basic ${btoa(String.fromCharCode(...bytes))}`
}

function showError(text) {
  errorEl.textContent = text
  errorEl.hidden = !text
}

/** Publishes one message as the current nickname; false (and the reason shown) when it was not accepted. */
async function publish(body, type) {
  const nick = currentNick()
  if (!nick) {
    showError('Pick a name first.')
    nickInput.focus()
    return false
  }

  let response
  try {
    response = await fetch(BUS_URL, {method: 'POST', headers: {'Content-Type': type, Authorization: basicAuth(nick)}, body})
  } catch {
    showError('Could not reach the server. Is it running?')
    return false
  }

  if (!response.ok) {
    // The bus explains a refusal in a one-line text body.
    showError((await response.text()).trim() || `${response.status} ${response.statusText}`)
    return false
  }

  showError('')
  return true
}

async function sendText() {
  const text = messageInput.value
  if (text.trim() === '') return
  // Cleared at once so a second Enter cannot send it twice; given back if refused.
  messageInput.value = ''
  if (!(await publish(text, 'text/plain; charset=utf-8')) && messageInput.value === '') messageInput.value = text
}

/**
 * The file's name as its type's `name` parameter: quoted (RFC 9110) when it
 * is printable ASCII, else RFC 2231's `name*=UTF-8''...`, so the type stays
 * ASCII in every header and JSON it passes through. The viewer does the same.
 */
function typeWithName(type, name) {
  const clean = name.replace(/\p{Cc}/gu, '')
  if (/^[\x20-\x7e]*$/.test(clean)) return `${type}; name="${clean.replace(/["\\]/g, '\\$&')}"`
  const encoded = encodeURIComponent(clean).replace(/['()*!]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `${type}; name*=UTF-8''${encoded}`
}

async function sendFiles(files) {
  for (const file of files) {
    if (!(await publish(file, typeWithName(file.type || 'application/octet-stream', file.name)))) return
  }
}

composer.addEventListener('submit', (event) => {
  event.preventDefault()
  sendText()
})

messageInput.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault()
    composer.requestSubmit()
  }
})

fileInput.addEventListener('change', () => {
  sendFiles([...fileInput.files])
  fileInput.value = ''
})

document.addEventListener('paste', (event) => {
  const files = [...(event.clipboardData?.files ?? [])]
  if (files.length === 0) return
  event.preventDefault()
  sendFiles(files)
})

function carriesFiles(event) {
  return event.dataTransfer?.types.includes('Files')
}

document.addEventListener('dragover', (event) => {
  if (!carriesFiles(event)) return
  event.preventDefault()
  dropzone.hidden = false
})

document.addEventListener('dragleave', (event) => {
  // Leaving one element for another inside the page is not leaving the page.
  if (event.relatedTarget === null) dropzone.hidden = true
})

document.addEventListener('drop', (event) => {
  dropzone.hidden = true
  if (!carriesFiles(event)) return
  event.preventDefault()
  sendFiles([...event.dataTransfer.files])
})

// --- showing ----------------------------------------------------------------
// Every type, sender, file name and body is whatever a publisher chose, so it
// reaches the page as text (textContent, attributes), never as markup.

/** Besides the count, the bodies held: a few large files must not exhaust the tab. */
const MAX_SHOWN_BYTES = 64 * 1024 * 1024
/** Text past either limit is shown collapsed, with a toggle to show it all. */
const LONG_LINES = 40
const LONG_CHARS = 4096
const COLLAPSED_LINES = 12
const COLLAPSED_CHARS = 1024
const FILE_NAME_CHARS = 120

/**
 * Pictures a browser only ever decodes into pixels, so a blob URL of their
 * own type is harmless: opened in a tab it shows the picture. Anything else
 * (SVG, HTML, XML, ...) opened from a blob URL is a document of the bus's
 * origin that runs its scripts, so it never gets a typed blob URL.
 */
const RASTER = new Set(['image/png', 'image/apng', 'image/jpeg', 'image/pjpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp', 'image/x-icon', 'image/vnd.microsoft.icon'])

const EXTENSIONS = new Map(Object.entries({
  'application/octet-stream': 'bin', 'application/zip': 'zip', 'application/gzip': 'gz', 'application/x-tar': 'tar',
  'application/pdf': 'pdf', 'application/json': 'json', 'application/x-ndjson': 'ndjson', 'application/xml': 'xml',
  'application/javascript': 'js', 'text/javascript': 'js', 'text/plain': 'txt', 'text/html': 'html', 'text/css': 'css',
  'text/csv': 'csv', 'text/markdown': 'md', 'text/xml': 'xml', 'image/png': 'png', 'image/apng': 'png', 'image/jpeg': 'jpg',
  'image/gif': 'gif', 'image/webp': 'webp', 'image/avif': 'avif', 'image/bmp': 'bmp', 'image/svg+xml': 'svg',
  'image/x-icon': 'ico', 'image/vnd.microsoft.icon': 'ico', 'audio/mpeg': 'mp3', 'audio/ogg': 'ogg', 'audio/wav': 'wav',
  'video/mp4': 'mp4', 'video/webm': 'webm',
}))

/** Per shown message: the blob URLs to revoke and the bytes to count off when it leaves the log. */
const holdings = new WeakMap()
let shownBytes = 0

function essence(type) {
  return type.split(';')[0].trim().toLowerCase()
}

function isTextual(type) {
  return /^(text\/|application\/(json|xml|javascript|ecmascript|x-ndjson|ld\+json|x-www-form-urlencoded)$)|\+(json|xml)$/.test(type)
}

/**
 * The parameters of a media type (RFC 9110 5.6.6), names lower-cased, the
 * first of a name kept. Quoted values may hold `;` and `\`-escapes; a
 * malformed parameter is skipped, not a reason to give up on the rest.
 */
function parametersOf(type) {
  const params = new Map()
  const at = type.indexOf(';')
  if (at < 0) return params
  // Each match starts at a ";" and runs to the next one outside quotes, so the matches tile the rest.
  const pattern = /;\s*([^;=\s]*)\s*(?:=\s*(?:"((?:[^"\\]|\\[\s\S])*)"?|([^;]*)))?[^;]*/gy
  for (const [, name, quoted, token] of type.slice(at).matchAll(pattern)) {
    const key = name.toLowerCase()
    if (key === '' || params.has(key)) continue
    params.set(key, quoted === undefined ? (token ?? '').trim() : quoted.replace(/\\([\s\S])/g, '$1'))
  }
  return params
}

/** RFC 8187 `charset'language'percent-encoded`, as in `name*=UTF-8''r%C3%A9sum%C3%A9.pdf`. */
function decodeExtValue(value) {
  const match = /^([^']*)'[^']*'(.*)$/s.exec(value)
  if (!match) return undefined
  try {
    const bytes = Uint8Array.from(match[2].match(/%[0-9a-f]{2}|[\s\S]/gi) ?? [], (piece) => (piece.length === 3 ? Number.parseInt(piece.slice(1), 16) : piece.charCodeAt(0) & 0xff))
    return new TextDecoder(match[1] || 'utf-8', {fatal: true}).decode(bytes)
  } catch {
    return undefined
  }
}

/**
 * Header values are bytes, one character each when they reach the page; a
 * name sent as UTF-8 (by this page, or curl from a UTF-8 terminal) reads as
 * such, anything else as Latin-1.
 */
function fromHeaderBytes(text) {
  if (!/[\u0080-\u00ff]/.test(text) || /[^\u0000-\u00ff]/.test(text)) return text
  try {
    return new TextDecoder('utf-8', {fatal: true}).decode(Uint8Array.from(text, (char) => char.charCodeAt(0)))
  } catch {
    return text
  }
}

/** The file name a message's type carries (`name`, or `filename` as in Content-Disposition), if any. */
function fileNameOf(type) {
  const params = parametersOf(type)
  for (const key of ['name*', 'filename*']) {
    const name = params.has(key) ? decodeExtValue(params.get(key)) : undefined
    if (name !== undefined) return name
  }
  for (const key of ['name', 'filename']) {
    if (params.has(key)) return fromHeaderBytes(params.get(key))
  }
  return undefined
}

/**
 * A name as sent, less control and invisible formatting characters: a
 * right-to-left override would make "invoice\u202Efdp.exe" read as
 * "invoiceexe.pdf".
 */
function visibleName(name) {
  return name.normalize('NFC').replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '').trim()
}

/**
 * A name to save under: visible, no path separators or characters Windows
 * refuses, no dots or spaces at either end, and not endless (the extension
 * kept).
 */
function cleanFileName(name) {
  const clean = visibleName(name)
    .replace(/[\\/:*?"<>|]/g, '_')
    .replace(/^[\s.]+|[\s.]+$/gu, '')
  const chars = Array.from(clean)
  if (chars.length <= FILE_NAME_CHARS) return clean
  const dot = chars.lastIndexOf('.')
  const extension = dot > 0 && chars.length - dot <= 16 ? chars.slice(dot) : []
  return [...chars.slice(0, FILE_NAME_CHARS - extension.length), ...extension].join('')
}

function extensionOf(type) {
  return EXTENSIONS.get(type) ?? /\+(json|xml|zip)$/.exec(type)?.[1] ?? 'bin'
}

function bytesOf(message) {
  if (message.encoding !== 'base64') return new TextEncoder().encode(message.body)
  const binary = atob(message.body)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/** The body as text; a body that is not UTF-8 is decoded by its declared charset. */
function textOf(message) {
  if (message.encoding !== 'base64') return message.body
  const charset = parametersOf(message.type).get('charset') ?? 'utf-8'
  try {
    return new TextDecoder(charset).decode(bytesOf(message))
  } catch {
    return new TextDecoder().decode(bytesOf(message))
  }
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} ${bytes === 1 ? 'byte' : 'bytes'}`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag)
  Object.assign(node, props)
  node.append(...children)
  return node
}

/** What a Blob is made of: a text body as it is (the Blob encodes it as UTF-8 natively, much faster than TextEncoder), else its bytes. */
function blobPartOf(message) {
  return message.encoding === 'base64' ? bytesOf(message) : message.body
}

function blobUrl(item, part, type) {
  const url = URL.createObjectURL(new Blob([part], {type}))
  holdings.get(item).urls.push(url)
  return url
}

/**
 * SVG shows from a data: URL: opened on its own it is a document of an
 * opaque origin, whose scripts reach nothing of the bus's. (As an <img> it
 * runs no script anyway.)
 */
function svgDataUrl(message) {
  if (message.encoding === 'base64') return `data:image/svg+xml;base64,${message.body}`
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(message.body)}`
}

/** A stable colour per name, so a conversation is easy to follow. */
function hueOf(name) {
  let hash = 0
  for (const char of name) hash = (hash * 31 + char.codePointAt(0)) >>> 0
  return hash % 360
}

function lineCount(text) {
  let lines = 1
  for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', at + 1)) lines++
  return lines
}

/** The start of a text: at most this many lines and characters, never half a surrogate pair. */
function excerpt(text, lines, chars) {
  let end = -1
  for (let line = 0; line < lines; line++) {
    end = text.indexOf('\n', end + 1)
    if (end < 0) break
  }
  let short = text.slice(0, Math.min(end < 0 ? text.length : end, chars))
  if (/[\ud800-\udbff]$/.test(short)) short = short.slice(0, -1)
  return short
}

/** A text message; a long one shows its start, with a toggle for the rest. */
function textBody(text, size) {
  const lines = lineCount(text)
  if (lines <= LONG_LINES && text.length <= LONG_CHARS) return element('p', {className: 'text', textContent: text})
  const short = `${excerpt(text, COLLAPSED_LINES, COLLAPSED_CHARS)}…`
  const more = `show all (${lines} ${lines === 1 ? 'line' : 'lines'}, ${formatSize(size)})`
  const paragraph = element('p', {className: 'text collapsed', textContent: short})
  const toggle = element('button', {type: 'button', className: 'more', textContent: more})
  toggle.setAttribute('aria-expanded', 'false')
  toggle.addEventListener('click', () => {
    const expand = toggle.getAttribute('aria-expanded') === 'false'
    paragraph.textContent = expand ? text : short
    paragraph.classList.toggle('collapsed', !expand)
    toggle.textContent = expand ? 'show less' : more
    toggle.setAttribute('aria-expanded', String(expand))
  })
  return element('div', {className: 'long'}, [paragraph, toggle])
}

/**
 * A file: its name when it has one, type, size and a download under that
 * name. The download's blob is application/octet-stream whatever the type,
 * so "open link in new tab" saves it instead of rendering it in this origin.
 */
function fileCard(item, message, type, fileName, saveAs) {
  const link = element('a', {href: blobUrl(item, blobPartOf(message), 'application/octet-stream'), download: saveAs, textContent: 'download'})
  const card = element('div', {className: 'card'})
  if (fileName) card.append(element('p', {className: 'name', textContent: fileName, title: fileName}))
  card.append(element('p', {className: 'file'}, [`${type}, ${formatSize(message.length)} `, link]))
  if (message.length === 0) {
    card.append(element('p', {className: 'empty', textContent: '(empty)'}))
  } else if (fileName && isTextual(type)) {
    // A text file is a file: its text stays folded away unless asked for.
    const text = textOf(message)
    const start = excerpt(text, LONG_LINES, LONG_CHARS)
    card.append(element('details', {className: 'preview'}, [element('summary', {textContent: 'preview'}), element('pre', {textContent: start.length < text.length ? `${start}…` : text})]))
  }
  return card
}

const lightbox = document.getElementById('lightbox')
const lightboxImage = document.getElementById('lightbox-image')

/** A picture at full size (as far as the window allows), in the page: no new tab, no URL to open. */
function openLightbox({src, name, saveAs, caption, download}) {
  lightboxImage.src = src
  lightboxImage.alt = name
  document.getElementById('lightbox-name').textContent = name
  document.getElementById('lightbox-meta').textContent = caption
  const link = document.getElementById('lightbox-download')
  link.href = download
  link.download = saveAs
  lightbox.showModal()
}

lightbox.addEventListener('close', () => lightboxImage.removeAttribute('src'))
document.getElementById('lightbox-close').addEventListener('click', () => lightbox.close())
// A click on the dimmed backdrop lands on the dialog itself.
lightbox.addEventListener('click', (event) => {
  if (event.target === lightbox) lightbox.close()
})

function picture(item, message, type, fileName, saveAs, keepScrolled) {
  const svg = type === 'image/svg+xml'
  const typed = svg ? undefined : blobUrl(item, blobPartOf(message), type)
  const src = svg ? svgDataUrl(message) : typed
  const image = element('img', {src, alt: fileName || `picture from ${message.sender ?? 'the shell'}`})
  const button = element('button', {type: 'button', className: 'picture', title: fileName ? `${fileName}: show full size` : 'show full size'}, [image])
  image.addEventListener('load', keepScrolled, {once: true})
  // Bytes that do not decode as their type are a file after all.
  image.addEventListener('error', () => button.replaceWith(fileCard(item, message, type, fileName, saveAs)), {once: true})
  let download = typed
  button.addEventListener('click', () => {
    download ??= blobUrl(item, blobPartOf(message), 'application/octet-stream')
    const size = image.naturalWidth ? `${image.naturalWidth}×${image.naturalHeight}, ` : ''
    openLightbox({src, name: fileName || saveAs, saveAs, caption: `${type}, ${size}${formatSize(message.length)}`, download})
  })
  return button
}

function renderBody(item, message, keepScrolled) {
  const type = essence(message.type)
  const name = fileNameOf(message.type)
  const fileName = name === undefined ? '' : visibleName(name)
  const saveAs = (name === undefined ? '' : cleanFileName(name)) || `message-${message.id ?? 'file'}.${extensionOf(type)}`
  if (message.length > 0 && (RASTER.has(type) || type === 'image/svg+xml')) return picture(item, message, type, fileName, saveAs, keepScrolled)
  if (name === undefined && message.length === 0) return element('p', {className: 'empty', textContent: '(empty)'})
  if (name === undefined && isTextual(type)) return textBody(textOf(message), message.length)
  return fileCard(item, message, type, fileName, saveAs)
}

function isNearBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 48
}

function drop(item) {
  const held = holdings.get(item)
  for (const url of held.urls) URL.revokeObjectURL(url)
  shownBytes -= held.bytes
  item.remove()
}

function show(message) {
  const own = message.sender !== null && message.sender === currentNick()
  const follow = own || isNearBottom()
  const keepScrolled = () => {
    if (follow) log.scrollTop = log.scrollHeight
  }

  const item = element('article', {className: own ? 'message own' : 'message'})
  holdings.set(item, {urls: [], bytes: message.length})
  item.dataset.id = message.id ?? ''
  item.dataset.type = essence(message.type)
  if (message.sender !== null) {
    item.dataset.sender = message.sender
    item.style.setProperty('--hue', String(hueOf(message.sender)))
  }

  const time = new Date(message.time)
  item.append(
    element('header', {}, [
      element('span', {className: 'sender', textContent: message.sender ?? 'shell'}),
      element('time', {dateTime: message.time, title: time.toLocaleString(), textContent: time.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'})}),
    ]),
    renderBody(item, message, keepScrolled),
  )
  log.append(item)
  shownBytes += message.length
  document.getElementById('empty')?.remove()
  // The newest message stays, however large.
  let count = log.querySelectorAll('.message').length
  while (count > 1 && (count > MAX_SHOWN || shownBytes > MAX_SHOWN_BYTES)) {
    drop(log.querySelector('.message'))
    count--
    // A gap line now above every message shown marks the edge of messages let go: it goes with them.
    while (log.firstElementChild?.classList.contains('gap')) log.firstElementChild.remove()
  }

  keepScrolled()
}

// --- gaps -------------------------------------------------------------------

/** An id (`<unix-ms>-<seq>`) as the time it was given; anything else as it is, cut short. */
function whenOf(id) {
  const match = /^(\d{1,15})-\d{1,15}$/.exec(id)
  return match ? new Date(Number(match[1])).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'}) : id.slice(0, 64)
}

/**
 * Where the server says messages may be missing (a resume after a restart,
 * or after longer than it keeps messages; messages skipped while the page
 * was too slow): a line of its own in the log, never a message. The JSON is
 * read for strings and a count only, and shown as text.
 */
function showGap(gap) {
  const reason = typeof gap?.reason === 'string' ? gap.reason : ''
  const after = typeof gap?.after === 'string' ? gap.after : null
  // Asked from a time (the backlog a page opens with), reaching back further than the server keeps: nothing this page had is missing.
  if (reason === 'expired' && after === null) return
  let text
  if (reason === 'dropped') {
    const skipped = Number.isSafeInteger(gap.skipped) && gap.skipped > 0 ? gap.skipped : 0
    text = `${skipped === 0 ? 'Some messages were' : skipped === 1 ? '1 message was' : `${skipped} messages were`} skipped here: this page was too slow to keep up.`
  } else if (reason === 'expired') {
    text = `Messages may be missing here: the server no longer keeps messages after ${whenOf(after)}.`
  } else if (reason === 'unknown') {
    text = 'Messages may be missing here: the server does not know the last message this page had, so it goes on with new ones only.'
  } else if (reason === 'lost') {
    text = 'Messages may be missing here: the shared log behind the server lost some.'
  } else {
    text = 'Messages may be missing here.'
  }
  const follow = isNearBottom()
  const line = element('p', {className: 'gap', textContent: text})
  line.setAttribute('role', 'note')
  line.dataset.reason = ['expired', 'unknown', 'dropped', 'lost'].includes(reason) ? reason : 'other'
  if (after !== null) line.dataset.after = after.slice(0, 64)
  log.append(line)
  if (follow) log.scrollTop = log.scrollHeight
}

// --- the stream -------------------------------------------------------------

function setStatus(state, text = state) {
  statusEl.dataset.state = state
  statusEl.textContent = text
}

/** The id of the last message shown, to resume after when the stream is opened anew. */
let lastId

/**
 * A page that opens shows the last hour of the conversation. EventSource
 * reconnects by itself when the stream drops (a server restart), sending
 * Last-Event-ID, which the server takes over the URL's since=; it gives up
 * (readyState CLOSED) on an HTTP error or a wrong content type, so then start
 * over, backing off, from the last message shown.
 */
function connect(attempt = 0) {
  const resume = lastId === undefined ? `&since=${BACKLOG}` : `&last_event_id=${encodeURIComponent(lastId)}`
  const source = new EventSource(`${BUS_URL}?format=sse${resume}`)
  source.addEventListener('open', () => {
    attempt = 0
    setStatus('live')
  })
  source.addEventListener('message', (event) => {
    try {
      const message = JSON.parse(event.data)
      show(message)
      lastId = message.id ?? lastId
    } catch (error) {
      console.error('msgbus chat: unreadable event', error)
    }
  })
  source.addEventListener('gap', (event) => {
    try {
      showGap(JSON.parse(event.data))
    } catch (error) {
      console.error('msgbus chat: unreadable gap event', error)
    }
  })
  source.addEventListener('error', () => {
    setStatus('reconnecting', 'reconnecting…')
    if (source.readyState !== EventSource.CLOSED) return
    setTimeout(() => connect(attempt + 1), RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)])
  })
}

connect()
messageInput.focus()
