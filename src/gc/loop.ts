// The periodic collector of the `monolithic` and `garbage-collector` modes: a run, then a pause
// of `interval` seconds, until stopped. A failed run is logged and the loop goes on.
import { formatGcReport, runGarbageCollectionOnce, type GcConfig, type GcDeps, type GcReport } from "./collect.ts";

export interface GcLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface GcLoop {
  /** Stop after the run in progress, if any. */
  stop(): Promise<void>;
}

export function startGarbageCollectionLoop(deps: Omit<GcDeps, "config"> & { config: GcConfig & { interval: number }; log: GcLog }): GcLoop {
  const { interval } = deps.config;
  if (interval <= 0) {
    deps.log.info("periodic garbage collection is disabled (garbage-collection.interval = 0)");
    return { stop: async () => {} };
  }
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = runGarbageCollectionOnce(deps).then(
      (report: GcReport) => {
        if (report.ran) deps.log.info(formatGcReport(report).replace(/\n\s*/g, " "), { gc: { ...report } });
      },
      (err: unknown) => deps.log.error("garbage collection failed", { error: err instanceof Error ? err.message : String(err) }),
    );
    void running.then(() => {
      if (!stopped) timer = setTimeout(tick, interval * 1000);
    });
  };
  tick();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
