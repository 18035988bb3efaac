// Preloaded into each of the benchmark's child processes, the server and the
// load tools (node --import): stops it (SIGTERM, on which `msgbus serve`
// closes gracefully and test-sub and test-pub report and exit) when the
// benchmark that started it is gone or its time is up, so no child outlives a
// killed benchmark. Costs one timer every half second.
const parent = Number(process.env.MSGBUS_BENCH_PARENT)
const deadline = Number(process.env.MSGBUS_BENCH_DEADLINE_MS)
const stop = () => {
  process.kill(process.pid, 'SIGTERM') // the command's own graceful end (and --cpu-prof's write)
  setTimeout(() => process.exit(1), 5000).unref()
}
// A worker of `serve --workers` has the server's primary for a parent, and ends with it.
if (parent > 0 && process.env.MSGBUS_WORKER_SLOT === undefined) {
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer)
      stop()
    }
  }, 500)
  timer.unref()
}
if (deadline > 0) setTimeout(stop, deadline).unref()
