// The peak resident set size (VmHWM) of a child process, sampled from /proc while it runs: once
// the process has exited, /proc no longer shows its memory, so the last sample is the figure.
import { readFileSync } from "node:fs";

export interface RssTracker {
  /** samples once more (while the process lives) and returns the peak so far, in bytes */
  peak(): number;
  stop(): void;
}

export function trackPeakRss(pid: number, intervalMs = 100): RssTracker {
  let peak = 0;
  const sample = (): number => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {
      // the process is gone; keep the last figure
    }
    return peak;
  };
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return { peak: sample, stop: () => clearInterval(timer) };
}
