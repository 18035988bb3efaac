/**
 * `npm run bench:nats`: what `--bus nats://` costs. A script that prints
 * figures, not a test. Needs nats-server (scripts/test-tools.sh).
 *
 *   1. latency: test-pub at --rate msg/s (default 1,000) into node 0 of
 *      three `msgbus serve --bus nats://` nodes; a test-sub of --subscribers
 *      connections on each node measures send-to-receipt latency (p50, p99),
 *      so nodes 1 and 2 are across the stream. Side by side, in the same
 *      round, the same load on one server alone (no --bus): the ratio of the
 *      medians is the figure.
 *   2. link: the link alone, in this process, no HTTP: three NatsLinks on
 *      one stream, 4 appenders at once on one of them, one message each:
 *      messages/s and this process's CPU per message (all three links:
 *      the publishing one and two followers), beside the same on
 *      EmbeddedLink (one process, no NATS).
 *   3. throughput: test-pub as fast as the server answers (64 publishes
 *      in flight: 16 keep-alive connections, 4 pipelined on each) into one node, then into
 *      all three at once (three test-pubs: the nodes race for the stream's
 *      tail, and a node that loses catches up and publishes again); messages/s
 *      published, and the CPU seconds of nats-server, the nodes and the load
 *      generators (they share the machine's cores).
 *
 * Every figure is the median of --rounds rounds. Everything runs on
 * loopback, is bounded in time, and stops its children on exit.
 *
 *   npm run bench:nats
 *   npm run bench:nats -- --rounds 5 --seconds 10 --no-build
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {exitOnHelp, numberOption, UsageError} from './args.js'
import {pubReport, Serve, startTestPub, stopTestSub, subscribersLive} from '../tools/load-run.js'
import {cpuSeconds} from '../tools/proc.js'
import {EmbeddedLink} from '../src/lib/bus/embedded-link.js'
import type {BusLink} from '../src/lib/bus/link.js'
import {NatsLink} from '../src/lib/link/nats-link.js'
import {median} from '../tools/figures.js'
import {freePort, log, prepareCli, runCli, startTestSub, stop, stopAll, type Cli} from '../tools/processes.js'
import {until} from '../tools/wait.js'

const HELP = `usage: npm run bench:nats -- [options]

  --rounds N        rounds; figures are medians (default 3)
  --seconds N       seconds of load per run (default 8)
  --rate N          messages/s of the latency part (default 1000)
  --subscribers N   subscriptions per node in the latency part (default 10)
  --no-build        run dist/ as it is
`

const fixed = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a')

async function startNats(dir: string): Promise<{child: ChildProcess; url: string}> {
  const port = await freePort()
  const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], {stdio: ['ignore', 'pipe', 'pipe']})
  let text = ''
  child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()))
  child.on('error', (error) => (text += `\n${error.message}`))
  await until(() => /Server is ready/.test(text), () => `nats-server to be ready (installed? scripts/test-tools.sh): ${text}`, {timeoutMs: 15_000, stop: () => child.exitCode !== null && `nats-server exited: ${text}`})
  process.once('exit', () => child.kill('SIGKILL'))
  return {child, url: `nats://127.0.0.1:${port}`}
}

interface LatencyRound {
  /** p50 and p99 per node, ms. */
  nodes: Array<{p50: number; p99: number; received: number; lost: number}>
  alone: {p50: number; p99: number}
}

/** One latency round: the same load on three nodes and on one server alone, at once (so the machine's load falls on both alike). */
async function latencyRound(runJs: string, bus: string, round: number, seconds: number, rate: number, subscribers: number): Promise<LatencyRound> {
  const life = (seconds + 60) * 1000
  const stream = `bench${round}-${Date.now()}`
  const nodes: Serve[] = []
  for (let i = 0; i < 3; i++) nodes.push(await Serve.start(runJs, ['--bus', `${bus}?stream=${stream}`], life, []))
  const alone = await Serve.start(runJs, [], life, [])
  const subs = [...nodes, alone].map((serve, i) => startTestSub(runJs, serve.url, 'lat', subscribers, `test-sub ${i}`, seconds + 20))
  await subscribersLive(subs, 20_000)
  const pubs = [startTestPub(runJs, nodes[0].url, 'lat', rate, seconds, 'test-pub nodes'), startTestPub(runJs, alone.url, 'lat', rate, seconds, 'test-pub alone')]
  await Promise.all(pubs.map((pub) => pubReport(pub)))
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const reports = await Promise.all(subs.map((sub) => stopTestSub(sub)))
  await Promise.all([...nodes, alone].map((serve) => stop(serve.cli.child, 3000)))
  const of = (i: number) => reports[i].report
  return {
    nodes: [0, 1, 2].map((i) => ({p50: of(i).latency_ms.p50, p99: of(i).latency_ms.p99, received: of(i).received, lost: of(i).lost})),
    alone: {p50: of(3).latency_ms.p50, p99: of(3).latency_ms.p99},
  }
}

/** `appenders` at once append `count` one-message appends through links[0]; messages/s and CPU ms per message of this process. */
async function linkRound(links: BusLink[], count: number, appenders = 4): Promise<{rate: number; cpuMs: number}> {
  const sink = {commit: (messages: unknown[], done?: (handed: number[]) => void) => done?.(messages.map(() => 0)), lost: () => {}}
  for (const link of links) await link.open({count: 1000, bytes: 0, ageMs: 0}, sink)
  const input = {channel: 'c', type: 'text/plain', essence: 'text/plain', body: Buffer.alloc(64)}
  let started = 0
  const cpu = process.cpuUsage()
  const t = performance.now()
  await Promise.all(
    Array.from({length: appenders}, async () => {
      while (started < count) {
        started++
        await links[0].append([input])
      }
    }),
  )
  const used = process.cpuUsage(cpu)
  const rate = count / ((performance.now() - t) / 1000)
  for (const link of links) await link.close()
  return {rate, cpuMs: (used.user + used.system) / 1000 / count}
}

/** test-pub as fast as answered, with IN_FLIGHT publishes in flight (16 connections, 4 pipelined on each): a node batches what waits. */
const FLAT_OUT = ['--connections', '16', '--pipeline', '4']
const IN_FLIGHT = 64

function flatOut(runJs: string, url: string, seconds: number, label: string): Cli {
  return runCli(runJs, label, ['test-pub', '--url', url, '-c', 'tput', '-r', '0', ...FLAT_OUT, '-d', String(seconds), '--interval', '5', '--json'], (seconds + 40) * 1000)
}

interface ThroughputRound {
  /** msg/s into one server alone (no --bus), and its CPU s per 1,000 messages. */
  alone: number
  aloneCpu: number
  one: number
  three: number
  /** CPU seconds per 1,000 messages: nats-server, the nodes together, the load generators. */
  cpu: {nats: number; nodes: number; load: number}
  errors: number
}

async function throughputRound(runJs: string, bus: string, nats: ChildProcess, round: number, seconds: number): Promise<ThroughputRound> {
  const life = (seconds * 2 + 60) * 1000
  const stream = `tput${round}-${Date.now()}`
  const single = await Serve.start(runJs, [], life, [])
  const singleBefore = cpuSeconds(single.pid)
  const alone = await pubReport(flatOut(runJs, single.url, seconds, 'test-pub alone'))
  const aloneCpu = ((cpuSeconds(single.pid) - singleBefore) / alone.report.published) * 1000
  await stop(single.cli.child, 3000)
  const nodes: Serve[] = []
  for (let i = 0; i < 3; i++) nodes.push(await Serve.start(runJs, ['--bus', `${bus}?stream=${stream}`, '--history', '10000'], life, []))
  const one = await pubReport(flatOut(runJs, nodes[0].url, seconds, 'test-pub one'))
  const natsBefore = cpuSeconds(nats.pid!)
  const nodesBefore = nodes.reduce((sum, serve) => sum + cpuSeconds(serve.pid), 0)
  const pubs: Cli[] = nodes.map((serve, i) => flatOut(runJs, serve.url, seconds, `test-pub ${i}`))
  const pids = pubs.map((pub) => pub.pid)
  let loadCpu = 0
  // A load generator's CPU, read just before it exits (its report comes as it ends).
  const sampler = setInterval(() => {
    let sum = 0
    for (const pid of pids) {
      try {
        sum += cpuSeconds(pid)
      } catch {
        return
      }
    }

    loadCpu = Math.max(loadCpu, sum)
  }, 200)
  const three = await Promise.all(pubs.map((pub) => pubReport(pub)))
  clearInterval(sampler)
  const natsCpu = cpuSeconds(nats.pid!) - natsBefore
  const nodesCpu = nodes.reduce((sum, serve) => sum + cpuSeconds(serve.pid), 0) - nodesBefore
  await Promise.all(nodes.map((serve) => stop(serve.cli.child, 3000)))
  const published = three.reduce((sum, {report}) => sum + report.published, 0)
  const per = (cpu: number) => (cpu / published) * 1000
  return {
    alone: alone.report.rate,
    aloneCpu,
    one: one.report.rate,
    three: three.reduce((sum, {report}) => sum + report.rate, 0),
    cpu: {nats: per(natsCpu), nodes: per(nodesCpu), load: per(loadCpu)},
    errors: one.report.errors + three.reduce((sum, {report}) => sum + report.errors, 0),
  }
}

async function main(): Promise<void> {
  const {values} = parseArgs({
    options: {rounds: {type: 'string'}, seconds: {type: 'string'}, rate: {type: 'string'}, subscribers: {type: 'string'}, 'no-build': {type: 'boolean'}, help: {type: 'boolean', short: 'h'}},
  })
  exitOnHelp(values.help, HELP)
  const rounds = numberOption(values.rounds, 'rounds', 3, 1)
  const seconds = numberOption(values.seconds, 'seconds', 8, 2)
  const rate = numberOption(values.rate, 'rate', 1000, 1)
  const subscribers = numberOption(values.subscribers, 'subscribers', 10, 1)
  const runJs = prepareCli(!values['no-build'])
  const dir = mkdtempSync(join(tmpdir(), 'msgbus-bench-nats-'))
  try {
    const nats = await startNats(dir)
    const latency: LatencyRound[] = []
    const throughput: ThroughputRound[] = []
    const linkRounds: Array<{nats: {rate: number; cpuMs: number}; embedded: {rate: number; cpuMs: number}}> = []
    for (let round = 0; round < rounds; round++) {
      log(`round ${round + 1}/${rounds}: link`)
      const links = [0, 1, 2].map(() => new NatsLink(`${nats.url}?stream=link${round}-${Date.now()}`))
      linkRounds.push({nats: await linkRound(links, 6000), embedded: await linkRound([new EmbeddedLink()], 6000)})
      log(`round ${round + 1}/${rounds}: latency`)
      latency.push(await latencyRound(runJs, nats.url, round, seconds, rate, subscribers))
      log(`round ${round + 1}/${rounds}: throughput`)
      throughput.push(await throughputRound(runJs, nats.url, nats.child, round, seconds))
    }

    const out: string[] = []
    out.push(`latency, ${rate} msg/s into node 0, ${subscribers} subscribers per node, ${seconds} s, median of ${rounds} rounds (ms):`)
    for (let i = 0; i < 3; i++) {
      const p50 = median(latency.map((r) => r.nodes[i].p50))
      const p99 = median(latency.map((r) => r.nodes[i].p99))
      const lost = latency.reduce((sum, r) => sum + r.nodes[i].lost, 0)
      out.push(`  node ${i}${i === 0 ? ' (publisher\'s)' : ''}: p50 ${fixed(p50)}  p99 ${fixed(p99)}  lost ${lost}`)
    }

    const alone50 = median(latency.map((r) => r.alone.p50))
    const alone99 = median(latency.map((r) => r.alone.p99))
    out.push(`  one server alone (no --bus): p50 ${fixed(alone50)}  p99 ${fixed(alone99)}`)
    out.push(`  ratio across nodes (nodes 1-2) / alone: p50 ${fixed(median(latency.flatMap((r) => [r.nodes[1].p50 / r.alone.p50, r.nodes[2].p50 / r.alone.p50])))}  p99 ${fixed(median(latency.flatMap((r) => [r.nodes[1].p99 / r.alone.p99, r.nodes[2].p99 / r.alone.p99])))}`)
    out.push(`link alone (in this process, no HTTP), 4 appenders on one of three links, median of ${rounds} rounds:`)
    out.push(`  NatsLink: ${fixed(median(linkRounds.map((r) => r.nats.rate)), 0)} msg/s, CPU ${fixed(median(linkRounds.map((r) => r.nats.cpuMs * 1000)), 0)} µs per message (three links)`)
    out.push(`  EmbeddedLink: ${fixed(median(linkRounds.map((r) => r.embedded.rate)), 0)} msg/s, CPU ${fixed(median(linkRounds.map((r) => r.embedded.cpuMs * 1000)), 1)} µs per message`)
    out.push(`throughput, publishes as fast as answered (${IN_FLIGHT} in flight per test-pub: ${FLAT_OUT.join(' ')}), ${seconds} s, median of ${rounds} rounds:`)
    out.push(`  into one server alone (no --bus): ${fixed(median(throughput.map((r) => r.alone)), 0)} msg/s, its CPU s per 1,000 messages ${fixed(median(throughput.map((r) => r.aloneCpu)), 3)}`)
    out.push(`  into one node: ${fixed(median(throughput.map((r) => r.one)), 0)} msg/s (ratio to alone ${fixed(median(throughput.map((r) => r.one / r.alone)))})`)
    out.push(`  into all three at once: ${fixed(median(throughput.map((r) => r.three)), 0)} msg/s`)
    out.push(
      `  CPU s per 1,000 messages (three at once): nats-server ${fixed(median(throughput.map((r) => r.cpu.nats)), 3)}, the three nodes ${fixed(median(throughput.map((r) => r.cpu.nodes)), 3)}, the test-pubs ${fixed(median(throughput.map((r) => r.cpu.load)), 3)}`,
    )
    out.push(`  publish errors: ${throughput.reduce((sum, r) => sum + r.errors, 0)}`)
    process.stdout.write(`${out.join('\n')}\n`)
    await stop(nats.child, 3000)
  } finally {
    await stopAll()
    rmSync(dir, {recursive: true, force: true})
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof UsageError ? `${error.message}\n\n${HELP}` : `bench: ${(error as Error).stack ?? String(error)}`}\n`)
  process.exit(error instanceof UsageError ? 2 : 1)
})
