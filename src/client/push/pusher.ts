// N upload workers fed from one queue (upstream `Pusher`). Each finished path reports a
// result line; failures are collected so the command can exit non-zero at the end.
import type { PathInfo } from "../nix-path-info.ts";
import type { PushReporter } from "../progress.ts";
import { AsyncQueue } from "./queue.ts";
import { uploadWithRetry, type UploadDeps } from "./upload.ts";

export interface PusherDeps extends UploadDeps {
  reporter: PushReporter;
  jobs: number;
}

export interface PushFailure {
  path: string;
  error: unknown;
}

export class Pusher {
  readonly #deps: PusherDeps;
  readonly #queue = new AsyncQueue<PathInfo>();
  readonly #workers: Promise<void>[];
  readonly failures: PushFailure[] = [];
  readonly pushed: string[] = [];

  constructor(deps: PusherDeps) {
    this.#deps = deps;
    this.#workers = Array.from({ length: deps.jobs }, () => this.#work());
  }

  queue(info: PathInfo): void {
    this.#queue.push(info);
  }

  /** Closes the queue and waits for every queued upload to finish. */
  async wait(): Promise<void> {
    if (!this.#queue.closed) this.#queue.close();
    await Promise.all(this.#workers);
  }

  async #work(): Promise<void> {
    for (let info = await this.#queue.next(); info !== undefined; info = await this.#queue.next()) {
      if (this.#deps.signal?.aborted === true) continue;
      const bar = this.#deps.reporter.begin(info);
      const start = performance.now();
      try {
        const outcome = await uploadWithRetry(info, this.#deps, bar);
        this.pushed.push(info.path);
        this.#deps.reporter.end(info, bar, {
          ok: true,
          deduplicated: outcome.deduplicated,
          fracDeduplicated: outcome.fracDeduplicated,
          seconds: (performance.now() - start) / 1000,
        });
      } catch (err) {
        this.failures.push({ path: info.path, error: err });
        this.#deps.reporter.end(info, bar, { ok: false, error: err instanceof Error ? err.message : String(err) });
      }
    }
  }
}
