/**
 * `npm run bench:redis`: nodes on one Redis stream (`serve --bus redis://`).
 * A script that prints figures, not a test. It starts its own redis-server
 * (loopback, a free port, a temporary folder, no persistence).
 *
 *   1. latency: 3 nodes; one publisher on node A at --rate msg/s (open loop,
 *      every 10 ms its share, spread over 4 pipelined keep-alive connections); one
 *      NDJSON subscriber on each of B and C: end-to-end latency (the publish
 *      written to A's socket, the message read from B's or C's), p50 and p99
 *      over both subscribers, per round.
 *   2. throughput: the most messages/s one Redis stream takes through our
 *      append path: (a) the link alone (RedisLink.append, --inflight appends
 *      in flight, 64-byte bodies, the bus side a sink that commits at once),
 *      (b) over HTTP, pipelined publishers on one node (--publishers
 *      connections); next to redis-benchmark's XADD (its custom-command form,
 *      same body size, same MAXLEN ~) run on the same machine in the same
 *      round, with -c 50 and with -P 16; ratios ours / redis-benchmark's.
 *   3. cost: the server's CPU per publish on one node at --rate msg/s with
 *      one subscriber, alone (the embedded link) and on Redis (node A, its
 *      follow loop included), turn about: what the link costs a node.
 *
 * Every figure is the median of --rounds rounds (after a warm-up round of
 * latency not counted); ratios are the medians of the rounds' ratios. CPU seconds of this
 * process (the load generator), the nodes and redis-server are reported, as
 * the 2 cores are shared.
 *
 *   npm run bench:redis
 *   npm run bench:redis -- --rounds 5 --seconds 5
 *   npm run bench:redis -- --no-build
 */
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {once} from 'node:events'
import {mkdtempSync, rmSync} from 'node:fs'
import {request} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {parseArgs} from 'node:util'
import {exitOnHelp, numberOption, UsageError} from './args.js'
import {RedisLink} from '../src/lib/link/redis-link.js'
import {parseRedisUrl} from '../src/lib/link/redis-url.js'
import {silentLogger} from '../src/lib/server/ops/logger.js'
import {Serve} from '../tools/load-run.js'
import {cpuSeconds} from '../tools/proc.js'
import {median, percentile} from '../tools/figures.js'
import {freePort, log, prepareCli, stop} from '../tools/processes.js'
import {Publisher} from '../tools/publisher.js'
import {until} from '../tools/wait.js'

const HELP = `usage: npm run bench:redis -- [options]

  latency     3 nodes on one Redis, publish on A at --rate msg/s, NDJSON
              subscribers on B and C: end-to-end p50/p99
  throughput  messages/s one stream takes: RedisLink.append alone, HTTP
              publishers on one node, and redis-benchmark XADD beside them
  cost        server CPU per publish, a node alone vs a node on Redis

Options:
  --rounds N       rounds; figures are medians (default 3)
  --seconds N      seconds per latency round (default 5)
  --rate N         msg/s in the latency part (default 1000)
  --messages N     messages per throughput run (default 30000)
  --inflight N     appends in flight on the link (default 64)
  --publishers N   HTTP publisher connections (default 4)
  --no-build       run dist/ as it is
`

const {values: flags} = parseArgs({
  options: {
    rounds: {type: 'string'},
    seconds: {type: 'string'},
    rate: {type: 'string'},
    messages: {type: 'string'},
    inflight: {type: 'string'},
    publishers: {type: 'string'},
    'no-build': {type: 'boolean'},
    help: {type: 'boolean', short: 'h'},
  },
})

/** redis-server of the benchmark's own. */
async function startRedis(): Promise<{child: ChildProcess; port: number; dir: string}> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'msgbus-bench-redis-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {stdio: ['ignore', 'pipe', 'pipe']})
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.on('error', () => {})
  await until(() => /Ready to accept connections/.test(output), () => `redis-server to start (is it installed? scripts/test-tools.sh): ${output}`, 10_000)
  return {child, port, dir}
}

function redisCli(port: number, ...args: string[]): string {
  return execFileSync('redis-cli', ['-p', String(port), ...args]).toString()
}

/** A subscriber reading NDJSON lines; calls `onBody` with each message's body and the time it was read. */
function ndjsonSubscriber(port: number, channel: string, onBody: (body: string, at: number) => void): Promise<() => void> {
  return new Promise((resolve, reject) => {
    const req = request({host: '127.0.0.1', port, path: `/msgbus/${channel}?format=ndjson`, agent: false}, (res) => {
      let pending = ''
      res.setEncoding('utf8')
      res.on('data', (text: string) => {
        const at = performance.now()
        const lines = (pending + text).split('\n')
        pending = lines.pop()!
        for (const line of lines) if (line) onBody((JSON.parse(line) as {body: string}).body, at)
      })
      resolve(() => req.destroy())
    })
    req.on('error', reject)
    req.end()
  })
}

interface LatencyRound {
  p50: number
  p99: number
  received: number
  sent: number
}

async function latencyRound(nodes: Serve[], rate: number, seconds: number, round: number): Promise<LatencyRound> {
  const channel = `lat${round + 1}`
  const latencies: number[] = []
  const record = (body: string, at: number) => latencies.push(at - Number(body.slice(0, body.indexOf(' '))))
  const closers = await Promise.all(nodes.slice(1).map((node) => ndjsonSubscriber(node.port, channel, record)))
  // Several connections: one answers its pipelined publishes in order, each after the one before has come back through Redis.
  const publishers = await Promise.all(Array.from({length: 4}, () => Publisher.open(nodes[0].port)))
  let turn = 0
  const padding = 'x'.repeat(40)
  const total = rate * seconds
  let sent = 0
  const started = performance.now()
  const sends: Array<Promise<string[]>> = []
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate))
      const bodies: string[] = []
      for (; sent < due; sent++) bodies.push(`${performance.now()} ${padding}`)
      for (const body of bodies) sends.push(publishers[turn++ % publishers.length].send(channel, [body]))
      if (sent >= total) resolve()
      else setTimeout(tick, 10)
    }

    tick()
  })
  await Promise.all(sends)
  await until(() => latencies.length >= 2 * total, () => `${2 * total} deliveries (got ${latencies.length})`, 30_000)
  for (const close of closers) close()
  for (const publisher of publishers) publisher.socket.destroy()
  const sorted = latencies.sort((a, b) => a - b)
  return {p50: percentile(sorted, 50), p99: percentile(sorted, 99), received: latencies.length, sent: total}
}

/** Server CPU per publish on one node at `rate` msg/s (4 publisher connections, one NDJSON subscriber that gets them all), in microseconds. */
async function costRun(node: Serve, rate: number, messages: number, round: number): Promise<number> {
  const channel = `cost${round}`
  let got = 0
  const close = await ndjsonSubscriber(node.port, channel, () => got++)
  const publishers = await Promise.all(Array.from({length: 4}, () => Publisher.open(node.port)))
  const body = 'x'.repeat(64)
  const before = cpuSeconds(node.pid)
  const started = performance.now()
  const sends: Array<Promise<string[]>> = []
  let sent = 0
  while (sent < messages) {
    const due = Math.min(messages, Math.floor(((performance.now() - started) / 1000) * rate))
    for (; sent < due; sent++) sends.push(publishers[sent % publishers.length].send(channel, [body]))
    await new Promise((resolve) => setTimeout(resolve, 10))
  }

  await Promise.all(sends)
  await until(() => got >= messages, () => `${messages} deliveries (got ${got})`, 30_000)
  const cpu = cpuSeconds(node.pid) - before
  close()
  for (const publisher of publishers) publisher.socket.destroy()
  return (cpu / messages) * 1e6
}

/** Appends through the link alone: `inflight` appends at a time, `messages` in all; messages/s. */
async function linkRun(url: string, messages: number, inflight: number, stream: string): Promise<number> {
  const link = new RedisLink(parseRedisUrl(`${url}?stream=${stream}`), {logger: silentLogger})
  await link.open({count: 10_000, bytes: 0, ageMs: 0}, {commit: (list, done) => done?.(list.map(() => 0)), lost: () => {}})
  const body = Buffer.alloc(64, 'x')
  const input = {channel: 'bench', type: 'text/plain', essence: 'text/plain', body}
  let next = 0
  const started = performance.now()
  await Promise.all(
    Array.from({length: inflight}, async () => {
      while (next < messages) {
        next++
        await link.append([input])
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  await link.close()
  return messages / seconds
}

/** Pipelined HTTP publishers on one node; messages/s. */
async function httpRun(port: number, messages: number, publishers: number): Promise<number> {
  const connections = await Promise.all(Array.from({length: publishers}, () => Publisher.open(port)))
  const body = 'x'.repeat(64)
  const each = Math.floor(messages / publishers)
  const started = performance.now()
  await Promise.all(
    connections.map(async (publisher) => {
      for (let sent = 0; sent < each; sent += 500) await publisher.send('thr', Array.from({length: Math.min(500, each - sent)}, () => body))
    }),
  )
  const seconds = (performance.now() - started) / 1000
  for (const publisher of connections) publisher.socket.destroy()
  return (each * publishers) / seconds
}

/** redis-benchmark's XADD (its custom-command form) with the same body and MAXLEN; requests/s. */
function redisBenchmark(port: number, messages: number, args: string[]): number {
  const out = execFileSync('redis-benchmark', ['-p', String(port), '-n', String(messages), ...args, '-q', 'XADD', 'rb', 'MAXLEN', '~', '10000', '*', 'b', 'x'.repeat(64)]).toString()
  const match = /([\d.]+) requests per second/.exec(out)
  if (!match) throw new Error(`redis-benchmark said: ${out}`)
  return Number(match[1])
}

async function main(): Promise<void> {
  exitOnHelp(flags.help, HELP)
  const rounds = numberOption(flags.rounds, 'rounds', 3, 1)
  const seconds = numberOption(flags.seconds, 'seconds', 5, 1)
  const rate = numberOption(flags.rate, 'rate', 1000, 1)
  const messages = numberOption(flags.messages, 'messages', 30_000, 100)
  const inflight = numberOption(flags.inflight, 'inflight', 64, 1)
  const publishers = numberOption(flags.publishers, 'publishers', 4, 1)
  for (const tool of ['redis-server', 'redis-benchmark', 'redis-cli']) {
    try {
      execFileSync(tool, ['--version'], {stdio: 'ignore'})
    } catch {
      throw new UsageError(`${tool} is missing: run scripts/test-tools.sh as root (apt-get install redis-server redis-tools)`)
    }
  }

  const runJs = prepareCli(!flags['no-build'])
  const redis = await startRedis()
  const url = `redis://127.0.0.1:${redis.port}`
  log(`redis-server ${redisCli(redis.port, 'INFO', 'server').match(/redis_version:(\S+)/)?.[1]} on ${url}; ${rounds} rounds`)
  const lifetime = 30 * 60_000
  const nodes = await Promise.all([0, 1, 2].map(() => Serve.start(runJs, ['--bus', url], lifetime, [])))
  try {
    // A round not counted: the nodes' code warms up (JIT) and their connections settle.
    await latencyRound(nodes, rate, 1, -1)
    const latency: LatencyRound[] = []
    const cpu = {bench: 0, nodes: 0, redis: 0, seconds: 0}
    for (let round = 0; round < rounds; round++) {
      const before = {bench: process.cpuUsage(), nodes: nodes.map((node) => cpuSeconds(node.pid)), redis: cpuSeconds(redis.child.pid!), at: performance.now()}
      const result = await latencyRound(nodes, rate, seconds, round)
      const after = process.cpuUsage(before.bench)
      cpu.bench += (after.user + after.system) / 1e6
      cpu.nodes += nodes.reduce((sum, node, i) => sum + cpuSeconds(node.pid) - before.nodes[i], 0)
      cpu.redis += cpuSeconds(redis.child.pid!) - before.redis
      cpu.seconds += (performance.now() - before.at) / 1000
      latency.push(result)
      log(`latency round ${round + 1}: ${result.sent} messages at ${rate}/s, ${result.received} deliveries on B and C: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms`)
    }

    // The price of the link: one node alone (the embedded link) and one node on Redis, turn about, the same load.
    const alone = await Serve.start(runJs, [], lifetime, [])
    const costs = {alone: [] as number[], redis: [] as number[]}
    try {
      for (let round = 0; round < rounds; round++) {
        costs.alone.push(await costRun(alone, rate, rate * seconds, round))
        costs.redis.push(await costRun(nodes[0], rate, rate * seconds, round))
        log(`cost round ${round + 1}: server CPU per publish at ${rate}/s, one subscriber: alone ${costs.alone.at(-1)!.toFixed(0)} µs, on Redis ${costs.redis.at(-1)!.toFixed(0)} µs`)
      }
    } finally {
      await stop(alone.cli.child, 3000)
    }

    const links: number[] = []
    const https: number[] = []
    const benchC: number[] = []
    const benchP: number[] = []
    for (let round = 0; round < rounds; round++) {
      redisCli(redis.port, 'DEL', 'rb')
      benchC.push(redisBenchmark(redis.port, messages, ['-c', '50']))
      redisCli(redis.port, 'DEL', 'rb')
      benchP.push(redisBenchmark(redis.port, messages, ['-c', '4', '-P', '16']))
      links.push(await linkRun(url, messages, inflight, `linkbench${round}`))
      https.push(await httpRun(nodes[0].port, messages, publishers))
      log(
        `throughput round ${round + 1}: link ${links.at(-1)!.toFixed(0)}/s, HTTP on one node ${https.at(-1)!.toFixed(0)}/s; redis-benchmark XADD -c 50 ${benchC.at(-1)!.toFixed(0)}/s, -c 4 -P 16 ${benchP.at(-1)!.toFixed(0)}/s`,
      )
    }

    const out = (text: string) => process.stdout.write(`${text}\n`)
    out('')
    out(`msgbus on Redis (${rounds} rounds, medians)`)
    out(`  latency, 3 nodes, ${rate} msg/s published on A, received on B and C:`)
    out(`    p50 ${median(latency.map((r) => r.p50)).toFixed(2)} ms   p99 ${median(latency.map((r) => r.p99)).toFixed(2)} ms`)
    out(`    CPU over the latency rounds (${cpu.seconds.toFixed(1)} s): load generator ${cpu.bench.toFixed(2)} s, 3 nodes ${cpu.nodes.toFixed(2)} s, redis-server ${cpu.redis.toFixed(2)} s`)
    const link = median(links)
    const http = median(https)
    const c50 = median(benchC)
    const p16 = median(benchP)
    // Ratios round by round (the two ran back to back, under the same load), then their medians.
    const ratio = (ours: number[], theirs: number[]) => median(ours.map((value, i) => value / theirs[i])).toFixed(2)
    out(`  server CPU per publish, one node, ${rate} msg/s, one subscriber:`)
    out(`    alone ${median(costs.alone).toFixed(0)} µs   on Redis ${median(costs.redis).toFixed(0)} µs   ratio ${ratio(costs.redis, costs.alone)}x`)
    out(`  one stream, 64-byte bodies, MAXLEN ~ 10000:`)
    out(`    RedisLink.append, ${inflight} in flight      ${link.toFixed(0).padStart(8)} msg/s   ${ratio(links, benchC)}x redis-benchmark -c 50, ${ratio(links, benchP)}x -P 16`)
    out(`    HTTP, ${publishers} pipelined publishers, one node ${http.toFixed(0).padStart(8)} msg/s   ${ratio(https, benchC)}x redis-benchmark -c 50, ${ratio(https, benchP)}x -P 16`)
    out(`    redis-benchmark XADD -c 50              ${c50.toFixed(0).padStart(8)} req/s`)
    out(`    redis-benchmark XADD -c 4 -P 16         ${p16.toFixed(0).padStart(8)} req/s`)
  } finally {
    await Promise.all(nodes.map((node) => stop(node.cli.child, 3000)))
    redis.child.kill('SIGKILL')
    rmSync(redis.dir, {recursive: true, force: true})
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof UsageError ? `${error.message}\n\n${HELP}` : String((error as Error).stack ?? error)}\n`)
    process.exit(error instanceof UsageError ? 2 : 1)
  },
)
