// `msgbus serve -u USER`: started as root to bind a privileged port, it then
// runs as USER, and every id of the process says so.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {execFileSync} from 'node:child_process'
import {curl, msgbus, ServeProcess} from './support/harness.js'

/** A privileged port nothing listens on (tried by binding it, which only root can). */
async function freePrivilegedPort(): Promise<number> {
  for (let port = 700; port < 1024; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer()
      probe.once('error', () => resolve(false))
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
    })
    if (free) return port
  }

  throw new Error('no free port below 1024')
}

/** Real, effective, saved and filesystem ids, and the supplementary groups, from /proc. */
function idsOf(pid: number): {uids: number[]; gids: number[]; groups: number[]} {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (name: string) => (new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '').split(/\s+/).filter(Boolean).map(Number)
  return {uids: field('Uid'), gids: field('Gid'), groups: field('Groups')}
}

describe('privilege drop (serve -u)', function () {
  this.timeout(15000)
  const root = typeof process.getuid === 'function' && process.getuid() === 0

  it('as root: binds a port below 1024, then runs as nobody, all ids and groups dropped, and serves', async function () {
    if (!root) {
      console.log('      skipped: the test must run as root to start the server as root')
      this.skip()
    }

    const [uid, gid] = execFileSync('getent', ['passwd', 'nobody'], {encoding: 'utf8'}).split(':').slice(2, 4).map(Number)
    const port = await freePrivilegedPort()
    const serve = await ServeProcess.start(['-p', String(port), '-l', '127.0.0.1', '-u', 'nobody'])
    try {
      await serve.logged(new RegExp(`running as nobody \\(uid ${uid}, gid ${gid}\\)`))
      const ids = idsOf(serve.child.pid!)
      assert.deepEqual(ids.uids, [uid, uid, uid, uid])
      assert.deepEqual(ids.gids, [gid, gid, gid, gid])
      assert.ok(!ids.groups.includes(0), `no root group left: ${ids.groups}`)
      const reply = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Content-Type: text/plain', '-d', 'hi', `http://127.0.0.1:${port}/msgbus/foo`])
      assert.equal(reply.stdout, '204')
    } finally {
      await serve.stop()
    }
  })

  it('an unknown user: a one-line error and a non-zero exit, before serving', async function () {
    if (!root) this.skip()
    const result = await msgbus(['serve', '-p', '0', '-l', '127.0.0.1', '-u', 'no-such-user-here'])
    assert.notEqual(result.code, 0)
    assert.equal(result.stderr, 'msgbus serve: no such user: no-such-user-here\n', 'nothing was bound first')
  })
})
