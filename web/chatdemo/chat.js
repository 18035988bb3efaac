// The msgbus chat demo: every message is a plain publish to one channel, so
// `msgbus send chatdemo` and `msgbus dump chatdemo` take part from a shell.
const BUS_URL = '/msgbus/chatdemo'
const NICK_KEY = 'msgbus-chat-nick'
const MAX_SHOWN = 500
const RETRY_MS = [2000, 4000, 8000, 15000, 30000]

const log = document.getElementById('log')
const nickInput = document.getElementById('nick')
const messageInput = document.getElementById('message')
const composer = document.getElementById('composer')
const fileInput = document.getElementById('file')
const statusEl = document.getElementById('status')
const errorEl = document.getElementById('error')
const dropzone = document.getElementById('dropzone')
/** Blob URLs per shown message, revoked when it leaves the log. */
const blobUrls = new WeakMap()

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

async function sendFiles(files) {
  for (const file of files) {
    if (!(await publish(file, file.type || 'application/octet-stream'))) return
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

function essence(type) {
  return type.split(';')[0].trim().toLowerCase()
}

function isTextual(type) {
  return /^(text\/|application\/(json|xml|javascript|ecmascript|x-ndjson|ld\+json|x-www-form-urlencoded)$)|\+(json|xml)$/.test(type)
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
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(message.type)?.[1] ?? 'utf-8'
  try {
    return new TextDecoder(charset).decode(bytesOf(message))
  } catch {
    return new TextDecoder().decode(bytesOf(message))
  }
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} bytes`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag)
  Object.assign(node, props)
  node.append(...children)
  return node
}

function blobUrl(item, message) {
  const url = URL.createObjectURL(new Blob([bytesOf(message)], {type: message.type}))
  blobUrls.set(item, [...(blobUrls.get(item) ?? []), url])
  return url
}

/** A stable colour per name, so a conversation is easy to follow. */
function hueOf(name) {
  let hash = 0
  for (const char of name) hash = (hash * 31 + char.codePointAt(0)) >>> 0
  return hash % 360
}

function renderBody(item, message, keepScrolled) {
  const type = essence(message.type)
  if (type.startsWith('image/')) {
    const image = element('img', {src: blobUrl(item, message), alt: `picture from ${message.sender ?? 'the shell'}`})
    image.addEventListener('load', keepScrolled, {once: true})
    return image
  }

  if (isTextual(type)) return element('p', {className: 'text', textContent: textOf(message)})
  const link = element('a', {href: blobUrl(item, message), download: `message-${message.id ?? 'file'}`, textContent: 'download'})
  return element('p', {className: 'file'}, [`${message.type}, ${formatSize(message.length)} `, link])
}

function isNearBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 48
}

function show(message) {
  const own = message.sender !== null && message.sender === currentNick()
  const follow = own || isNearBottom()
  const keepScrolled = () => {
    if (follow) log.scrollTop = log.scrollHeight
  }

  const item = element('article', {className: own ? 'message own' : 'message'})
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
  document.getElementById('empty')?.remove()
  while (log.querySelectorAll('.message').length > MAX_SHOWN) {
    const oldest = log.querySelector('.message')
    for (const url of blobUrls.get(oldest) ?? []) URL.revokeObjectURL(url)
    oldest.remove()
  }

  keepScrolled()
}

// --- the stream -------------------------------------------------------------

function setStatus(state, text = state) {
  statusEl.dataset.state = state
  statusEl.textContent = text
}

/** The id of the last message shown, to resume after when the stream is opened anew. */
let lastId

/**
 * EventSource reconnects by itself when the stream drops (a server restart),
 * sending Last-Event-ID; it gives up (readyState CLOSED) on an HTTP error or
 * a wrong content type, so then start over, backing off, from the last
 * message shown.
 */
function connect(attempt = 0) {
  const resume = lastId === undefined ? '' : `&last_event_id=${encodeURIComponent(lastId)}`
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
  source.addEventListener('error', () => {
    setStatus('reconnecting', 'reconnecting…')
    if (source.readyState !== EventSource.CLOSED) return
    setTimeout(() => connect(attempt + 1), RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)])
  })
}

connect()
messageInput.focus()
