// The cleanup of a failed upload that could not reach the database (PostgreSQL restarting under
// it) is tried again in the background until the database answers. Left behind, the pending rows
// of that upload would make every retry of the same push wait them out as "busy" for up to
// BUSY_WINDOW_MS; past that window they no longer block anyone and GC reaps them, so the retries
// stop there.
import { unavailableReason } from "../errors.ts";

const FIRST_DELAY_MS = 200;
const MAX_DELAY_MS = 5_000;

export class LeftoverCleanup {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly windowMs: number;

  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }

  /** Run `cleanup` soon, and again while it fails because the database is unreachable. */
  schedule(cleanup: () => Promise<void>): void {
    this.retryLater(cleanup, Date.now() + this.windowMs, FIRST_DELAY_MS);
  }

  /** Drop the attempts not yet run (shutdown). */
  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private retryLater(cleanup: () => Promise<void>, deadline: number, delayMs: number): void {
    if (Date.now() + delayMs > deadline) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      cleanup().catch((err: unknown) => {
        // anything but an unreachable database is left for GC, as an upload's cleanup always was
        if (unavailableReason(err)) this.retryLater(cleanup, deadline, Math.min(delayMs * 2, MAX_DELAY_MS));
      });
    }, delayMs);
    timer.unref(); // a pending attempt never keeps the process alive
    this.timers.add(timer);
  }
}
