/**
 * Readiness as a list of named checks, each saying what is wrong or nothing:
 * the server adds its own (listeners bound, history store writing, not
 * shutting down), and whatever it comes to depend on later (a broker link)
 * adds one more. `/readyz` on the metrics listener (metrics-listener.ts)
 * answers from it.
 */

/** What is wrong, in one line, or undefined when all is well. */
export type HealthCheck = () => string | undefined

export interface CheckResult {
  name: string
  /** Undefined when the check passed. */
  failure: string | undefined
}

export class Readiness {
  private readonly checks = new Map<string, HealthCheck>()

  /** Adds a check; a name already there is an error (two parts reporting under one name would hide one). */
  add(name: string, check: HealthCheck): void {
    if (this.checks.has(name)) throw new Error(`readiness check ${JSON.stringify(name)} exists already`)
    this.checks.set(name, check)
  }

  /** Runs every check; a check that throws has failed, with its message. */
  run(): CheckResult[] {
    return [...this.checks].map(([name, check]) => {
      try {
        return {name, failure: check()}
      } catch (error) {
        return {name, failure: `the check failed: ${(error as Error)?.message ?? String(error)}`}
      }
    })
  }

  get ready(): boolean {
    return this.run().every((result) => result.failure === undefined)
  }
}

/** One line per check, as Kubernetes' own /readyz?verbose writes them: `[+]name ok`, `[-]name failed: why`. */
export function healthText(results: CheckResult[]): string {
  return results.map(({name, failure}) => (failure === undefined ? `[+]${name} ok\n` : `[-]${name} failed: ${failure.replace(/[\r\n]+/g, ' ')}\n`)).join('')
}
