/**
 * `npx msgbus serve` (npm exec, as npm run and npm start) runs the command
 * through a shell: npm -> sh -c msgbus -> node. Sent SIGTERM, npm passes it
 * to that shell only; the shell dies without passing it on, and node, now
 * re-parented, would serve on, holding the port, with nobody to stop it.
 * Linux would tell a child of its parent's death (PR_SET_PDEATHSIG), but
 * Node cannot ask for that; so a server started by npm watches its parent
 * id, which changes when the parent dies, and stops as it would on SIGTERM.
 *
 * Only under npm: `msgbus serve &` from a shell that then exits, or nohup,
 * is meant to outlive its parent.
 */

/** npm sets these for what it runs (npx, npm exec, npm run, npm start). */
export function startedByNpm(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.npm_lifecycle_event !== undefined || env.npm_command !== undefined
}

/** How often the parent is looked at: a getppid() call, nothing more. */
const EVERY_MS = 500

/** Calls `onGone` once, when this process's parent has died; returns the function that stops watching. */
export function watchParent(onGone: (parent: number) => void, everyMs = EVERY_MS): () => void {
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    onGone(parent)
  }, everyMs)
  timer.unref()
  return () => clearInterval(timer)
}
