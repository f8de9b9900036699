// The periodic collector of the `monolithic` and `garbage-collector` modes: a run at once, then a
// pause of `interval` seconds, until stopped. A failed run is logged and the loop goes on; stop()
// interrupts a run between its steps, so a shutdown never waits for a long collection.
import { randomUUID } from "node:crypto";
import { runGarbageCollectionOnce, type GcConfig, type GcDeps } from "./collect.ts";
import { formatGcReport } from "./report.ts";

/** What the loop needs of the server's logger (structural, so gc does not import server). */
export interface GcLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface GcLoop {
  /** Interrupt the run in progress, if any, and stop scheduling runs. */
  stop(): Promise<void>;
}

export interface GcLoopDeps extends Omit<GcDeps, "config" | "signal" | "leaseOwner"> {
  /** `interval` in seconds; 0 disables the loop */
  config: GcConfig & { interval: number };
  log: GcLog;
}

export function startGarbageCollectionLoop(deps: GcLoopDeps): GcLoop {
  const { interval } = deps.config;
  const { log } = deps;
  if (interval <= 0) {
    log.info("periodic garbage collection is disabled (garbage-collection.interval = 0)");
    return { stop: async () => {} };
  }
  const shutdown = new AbortController();
  // one lease owner for all runs: a release lost to a database restart does not make the next
  // runs skip as if another collector held the lease (for its whole TTL)
  const leaseOwner = randomUUID();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  async function runOnce(): Promise<void> {
    try {
      const report = await runGarbageCollectionOnce({ ...deps, signal: shutdown.signal, leaseOwner });
      if (!report.ran) {
        log.info("garbage collection skipped: another collector holds the gc lease");
        return;
      }
      log.info(formatGcReport(report).replace(/\n\s*/g, " "), { gc: { ...report } });
      if (report.deleteFailures > 0) {
        log.warn("some chunk files could not be deleted; they are retried by the next run", { failures: report.deleteFailures });
      }
    } catch (err) {
      if (shutdown.signal.aborted) log.info("garbage collection interrupted by shutdown; the next run picks up where it stopped");
      else log.error("garbage collection failed", { error: err instanceof Error ? err.message : String(err) });
    }
  }
  const tick = () => {
    running = runOnce().finally(() => {
      // not unref'd: in `garbage-collector` mode this timer is what keeps the process alive
      if (!shutdown.signal.aborted) timer = setTimeout(tick, interval * 1000);
    });
  };
  tick();
  return {
    async stop() {
      shutdown.abort(new Error("the garbage collector is stopping"));
      clearTimeout(timer);
      await running;
    },
  };
}
