// Reading raw HTTP answers, and asserting the one-line errors docs/protocol.md asks for.
import assert from 'node:assert/strict'
import type {BusServer} from '../../src/lib/index.js'
import {portOf, RawClient, type Reply} from './harness.js'

export interface Answer {
  status: number
  statusLine: string
  headers: Record<string, string>
  body: string
}

/**
 * Splits the bytes received on one connection into the responses they hold
 * (bodies by Content-Length; none for 1xx, 204, 304 and answers to HEAD).
 * Stops at an incomplete one.
 */
export function answers(text: string, heads: string[] = []): Answer[] {
  const list: Answer[] = []
  let at = 0
  for (;;) {
    const end = text.indexOf('\r\n\r\n', at)
    if (end < 0) return list
    const [statusLine, ...lines] = text.slice(at, end).split('\r\n')
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
    }

    const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(statusLine)?.[1])
    const bodiless = status < 200 || status === 204 || status === 304 || heads[list.length] === 'HEAD'
    const length = bodiless ? 0 : Number(headers['content-length'] ?? 0)
    if (end + 4 + length > text.length) return list
    list.push({status, statusLine, headers, body: text.slice(end + 4, end + 4 + length)})
    at = end + 4 + length
  }
}

/** One request on its own raw socket with `Connection: close`; resolves with the answer once the server closes. */
export async function raw(server: BusServer, method: string, target: string, headers = '', body = ''): Promise<Answer & {bytes: string}> {
  const client = await RawClient.open(portOf(server), `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${headers}\r\n${body}`)
  const bytes = await client.untilClosed(3000)
  const [answer] = answers(bytes, [method])
  assert.ok(answer, `an answer to ${method} ${target}: ${JSON.stringify(bytes)}`)
  return {...answer, bytes}
}

export function post(server: BusServer, target: string, body: string, headers = 'Content-Type: text/plain\r\n'): Promise<Answer & {bytes: string}> {
  return raw(server, 'POST', target, `${headers}Content-Length: ${Buffer.byteLength(body)}\r\n`, body)
}

export const SERVER = /^msgbus(\/\S+)?$/

/** The status, a one-line text/plain body, a matching reason, and the Server header. */
export function assertError(answer: Answer | Reply, status: number, reason?: RegExp, what = ''): void {
  const headers = answer.headers as Record<string, string | string[] | undefined>
  const body = answer.body.toString()
  assert.equal(answer.status, status, `${what}: expected ${status}, got ${answer.status} ${body}`)
  assert.equal(headers['content-type'], 'text/plain; charset=utf-8', what)
  // A reason may quote what the client sent: a browser must never read it as anything but text.
  assert.equal(headers['x-content-type-options'], 'nosniff', what)
  assert.match(body, /^[^\r\n]+\n$/, `${what}: one line`)
  if (reason) assert.match(body, reason, what)
  assert.match(String(headers.server), SERVER, what)
}

export function basic(user: string, password = 'pw'): string {
  return `Authorization: Basic ${Buffer.from(`${user}:${password}`).toString('base64')}\r\n`
}
