/**
 * `--metrics [ADDRESS:]PORT`: a listener of its own, apart from the bus's
 * ports, so that what an operator watches is never public by accident
 * (ADDRESS defaults to 127.0.0.1) and a scrape never goes through the bus's
 * access control, limits or logs. It serves three paths, GET or HEAD:
 * `/metrics` (Prometheus text, metrics.ts), `/livez` (200 while the event
 * loop turns) and `/readyz` (200 when every readiness check passes, else
 * 503; health.ts). Plain text, one line per check; anything else is 404.
 */
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {MsgbusError, messageOf} from '../../util/errors.js'
import {healthText, type Readiness} from './health.js'

export const DEFAULT_METRICS_ADDRESS = '127.0.0.1'

/** Scrapers and probes need few connections: more than this at once are not accepted. */
const MAX_CONNECTIONS = 64

export interface MetricsAddress {
  host: string
  port: number
}

/** `9464`, `0.0.0.0:9464`, `localhost:9464` or `[::1]:9464`; throws ERR_MSGBUS_OPTION_INVALID on anything else. */
export function parseMetricsAddress(value: string): MetricsAddress {
  const match = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):)?(\d{1,5})$/.exec(value.trim())
  const port = match ? Number(match[3]) : NaN
  if (!match || port > 65535) {
    throw new MsgbusError('ERR_MSGBUS_OPTION_INVALID', `--metrics ${JSON.stringify(value)} is not [ADDRESS:]PORT (as in 9464, 127.0.0.1:9464 or [::1]:9464)`)
  }

  return {host: match[1] ?? match[2] ?? DEFAULT_METRICS_ADDRESS, port}
}

export interface MetricsContext {
  readonly readiness: Readiness
  scrape(): Promise<{contentType: string; text: string}>
  readonly serverHeader: string
}

function answer(req: IncomingMessage, res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  const bytes = Buffer.from(body)
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': String(bytes.length),
    // Each answer is the state of now: no cache in between may keep one.
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  })
  res.end(req.method === 'HEAD' ? undefined : bytes)
}

async function route(ctx: MetricsContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?', 1)[0]
  if (path !== '/metrics' && path !== '/livez' && path !== '/readyz') return answer(req, res, 404, `not found: ${path} (this listener serves /metrics, /livez and /readyz)\n`)
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD')
    return answer(req, res, 405, `method ${req.method} is not allowed here\n`)
  }

  if (path === '/livez') return answer(req, res, 200, '[+]ping ok\n')
  if (path === '/readyz') {
    const results = ctx.readiness.run()
    return answer(req, res, results.every((result) => result.failure === undefined) ? 200 : 503, healthText(results))
  }

  const {contentType, text} = await ctx.scrape()
  answer(req, res, 200, text, contentType)
}

export function createMetricsListener(ctx: MetricsContext): Server {
  const server = createServer({requireHostHeader: false}, (req, res) => {
    res.setHeader('Server', ctx.serverHeader)
    // Nothing of a request's body is wanted: read it away, so a keep-alive connection stays usable.
    req.resume()
    route(ctx, req, res).catch((error: unknown) => {
      if (res.headersSent) return void res.destroy()
      answer(req, res, 500, `${messageOf(error)}\n`)
    })
  })
  server.maxConnections = MAX_CONNECTIONS
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  server.keepAliveTimeout = 5000
  return server
}

/** Closes a listener, its open connections too (a scraper's keep-alive one would hold the close up); nothing if it is not listening. */
export async function closeListener(server: Server | undefined): Promise<void> {
  if (!server?.listening) return
  const closed = new Promise((resolve) => server.close(resolve))
  server.closeAllConnections()
  await closed
}
