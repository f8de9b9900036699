// Pushing paths that arrive over time (`push --stdin`, `watch-store`), as upstream's
// `PushSession`: paths are batched (a batch is planned 2 s after the last path arrived, or 10 s
// after its first), planned together (one closure, one get-missing-paths), and remembered so
// that no path is planned or uploaded twice in a session.
import { hashOfPath, planPush, type PlanDeps, type PlanOptions, type PushPlan } from "./plan.ts";
import type { Pusher } from "./pusher.ts";

export interface SessionTiming {
  idleMs: number;
  maxMs: number;
}

export const DEFAULT_TIMING: SessionTiming = { idleMs: 2000, maxMs: 10_000 };

export interface SessionHooks {
  /** a batch was planned (before its paths are queued) */
  onPlan?(plan: PushPlan): void;
  /** planning a batch failed; the session goes on with the next one */
  onError?(err: unknown): void;
}

export class PushSession {
  readonly #pusher: Pusher;
  readonly #deps: PlanDeps;
  readonly #options: PlanOptions;
  readonly #timing: SessionTiming;
  readonly #hooks: SessionHooks;
  readonly #known = new Set<string>();
  #pending = new Set<string>();
  #idleTimer: NodeJS.Timeout | null = null;
  #maxTimer: NodeJS.Timeout | null = null;
  #running: Promise<void> = Promise.resolve();
  planErrors = 0;

  constructor(pusher: Pusher, deps: PlanDeps, options: PlanOptions, hooks: SessionHooks = {}, timing = DEFAULT_TIMING) {
    this.#pusher = pusher;
    this.#deps = deps;
    this.#options = options;
    this.#hooks = hooks;
    this.#timing = timing;
  }

  /** Queues full store paths. */
  queue(paths: readonly string[]): void {
    for (const p of paths) if (!this.#known.has(hashOfPath(p))) this.#pending.add(p);
    if (this.#pending.size === 0) return;
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => this.#flush(), this.#timing.idleMs);
    this.#maxTimer ??= setTimeout(() => this.#flush(), this.#timing.maxMs);
  }

  /** Plans what is still pending, then waits for every upload of the session. */
  async close(): Promise<void> {
    this.#flush();
    await this.#running;
    await this.#pusher.wait();
  }

  #flush(): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    if (this.#maxTimer !== null) clearTimeout(this.#maxTimer);
    this.#idleTimer = this.#maxTimer = null;
    if (this.#pending.size === 0) return;
    const roots = [...this.#pending].filter((p) => !this.#known.has(hashOfPath(p)));
    this.#pending = new Set();
    this.#running = this.#running.then(() => this.#process(roots));
  }

  async #process(roots: string[]): Promise<void> {
    if (roots.length === 0) return;
    try {
      const plan = await planPush(roots, this.#deps, this.#options);
      plan.paths = plan.paths.filter((info) => !this.#known.has(hashOfPath(info.path)));
      // Paths found to be cached already need no second look either.
      for (const r of roots) this.#known.add(hashOfPath(r));
      this.#hooks.onPlan?.(plan);
      for (const info of plan.paths) {
        this.#known.add(hashOfPath(info.path));
        this.#pusher.queue(info);
      }
    } catch (err) {
      this.planErrors++;
      this.#hooks.onError?.(err);
    }
  }
}
