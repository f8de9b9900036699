// Waiting in tests: on the condition itself, with a deadline that fails the test, never a fixed
// sleep that passes on a quiet machine and fails on a loaded one. Deadlines are generous (a loaded
// 2-core machine shared with other runs); a condition that holds returns at its next poll.
import { setTimeout as sleep } from "node:timers/promises";

export interface WaitOptions {
  /** what is awaited, for the failure message ("replica B to refuse the token") */
  what: string;
  /** default 30 s */
  timeoutMs?: number;
  /** between polls; default 20 ms */
  intervalMs?: number;
}

/**
 * Polls `check` until it returns a truthy value (returned) or the deadline passes (throws, naming
 * `what` and the last value seen). An exception from `check` ends the wait at once: a condition
 * that may fail transiently must catch its own errors.
 */
export async function waitFor<T>(check: () => T | Promise<T>, opts: WaitOptions): Promise<Exclude<T, false | null | undefined | 0 | "">> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const started = Date.now();
  let last: T;
  for (;;) {
    last = await check();
    if (last) return last as Exclude<T, false | null | undefined | 0 | "">;
    if (Date.now() - started > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what} (last seen: ${describe(last)})`);
    }
    await sleep(opts.intervalMs ?? 20);
  }
}

function describe(value: unknown): string {
  try {
    const text = typeof value === "string" ? JSON.stringify(value) : String(JSON.stringify(value) ?? value);
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  } catch {
    return String(value);
  }
}
