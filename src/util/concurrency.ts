// Running async work with a bounded number in flight: over a list (mapLimit, forEachLimit), or as
// items arrive from a stream (TaskSet). The one home of these helpers for every room.

/** Applies `fn` to every item, at most `limit` at a time; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Run `task` over `items` with at most `limit` running at once; resolves when all are done. */
export async function forEachLimit<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  await mapLimit(items, limit, task);
}

/**
 * The tasks running now, for work that arrives one item at a time (a stream cut into batches or
 * parts): the producer adds a task, then waits for room before reading on, so at most `limit`
 * run at once and memory stays bounded. Tasks must not reject: each records its own failure.
 */
export class TaskSet {
  readonly #running = new Set<Promise<void>>();
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  get size(): number {
    return this.#running.size;
  }

  add(task: Promise<void>): void {
    this.#running.add(task);
    const done = () => this.#running.delete(task);
    task.then(done, done);
  }

  /** Resolves once fewer than `limit` tasks run, or at once when `stop()` says to wait no longer. */
  async room(stop?: () => boolean): Promise<void> {
    while (this.#running.size >= this.limit && !stop?.()) await Promise.race(this.#running);
  }

  /** Resolves when every task added so far has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.#running);
  }
}

/** `items` in batches of `size` (the last one shorter). Not "chunks": in this codebase a chunk is a piece of a NAR. */
export function batches<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
