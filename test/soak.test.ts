// The soak test (issue 6) in CI: `npm run soak` for 60 s with 2,000
// subscribers over 20 channels and 50 msg/s (5,000 deliveries/s) against
// the built CLI (dist/, built by `npm test` first): bench/soak.ts,
// bench/README.md "Soak". About 75 s: connecting the subscribers, 60 s of
// publishing and churn, draining and stopping. Churn 300/s rather than the
// default 100, so that in 60 s a leak of 1 KiB per connection (about 9 MiB
// between the quarters compared) fails the growth check (4 MiB) here too.
// The full-size soak is `npm run soak` (10,000 subscribers, 10 minutes).
//
// What is asserted is the server's behaviour: nothing lost, duplicated or
// out of order, every churned connection refused by nobody and every FIN
// answered (however long a busy machine takes: the churner waits for them),
// the subscriber count back, no crash, no growth. Not this machine's speed:
// the soak's own verdict also fails a run whose test-pub could not keep 95 %
// of its rate, which here only says the machine was busy; the test asks for
// half, below which the run did not soak the server.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {ROOT} from './support/harness.js'
import {childSeed} from './support/random.js'

interface SoakResult {
  verdict: {pass: boolean; reasons: string[]}
  publisher: {published: number}
  subscribers: {received: number; expected: number}
}

describe('soak @slow', function () {
  this.timeout(330_000)

  it('60 s, 2,000 subscribers over 20 channels, 50 msg/s, churn 300/s: no loss, no growth (npm run soak -- --duration 60 --subscribers 2000 --rate 50 --churn 300)', async () => {
    const seed = childSeed('soak')
    const args = ['--no-build', '--duration', '60', '--subscribers', '2000', '--rate', '50', '--channels', '20', '--churn', '300', '--seed', String(seed), '--json']
    const child = spawn(process.execPath, ['--import', 'tsx/esm', 'bench/soak.ts', ...args], {
      cwd: ROOT,
      env: {...process.env, NO_COLOR: '1'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text))
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text))
    // The soak bounds itself; this is the last resort (SIGINT: it stops its children).
    const timer = setTimeout(() => child.kill('SIGINT'), 300_000)
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
    clearTimeout(timer)
    const summary = stdout.split('\n').filter((line) => !line.startsWith('{')).join('\n').trim()
    process.stderr.write(`${summary.replace(/^/gm, '      ')}\n`)
    const context = `the soak exited ${code ?? signal}:\n${summary}\n\nits progress:\n${stderr.split('\n').slice(-40).join('\n')}`
    // 0: passed; 1: its verdict failed (judged below); 2 or a signal: it could not be run.
    assert.ok(code === 0 || code === 1, context)
    const result = JSON.parse(stdout.split('\n').find((line) => line.startsWith('{'))!) as SoakResult
    const pace = (reason: string) => /\(could not keep the rate\)$/.test(reason)
    assert.deepEqual(result.verdict.reasons.filter((reason) => !pace(reason)), [], context)
    assert.equal(code, result.verdict.pass ? 0 : 1, context)
    assert.ok(result.publisher.published >= 0.5 * 60 * 50, `test-pub published ${result.publisher.published} of the ${60 * 50} due: too few to soak the server\n${context}`)
    assert.equal(result.subscribers.received, result.subscribers.expected, context)
  })
})
