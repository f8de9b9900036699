// Whole-file reads of chunk files for NAR downloads, off the event loop and in batches. Read
// through the libuv thread pool, a chunk file costs three round trips (open, read, close), and a
// 600 MB NAR has some 9,000 of them: the event loop ends up waiting on the pool instead of
// writing to the socket. Here every read asked for in one turn of the event loop goes to a worker
// thread in one message; the worker opens, reads and closes each file with synchronous calls and
// sends the buffers back in one message, moved rather than copied. A cold page cache blocks the
// worker, never the event loop. One worker: a second one cost its isolate's memory (the 512 MiB
// memory test reached its bound) for no gain measurable here. The worker is plain CommonJS evaluated from a string, so it runs
// the same from src/ and from dist/.
import { Worker } from "node:worker_threads";

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const fs = require("node:fs");
parentPort.on("message", ({ id, jobs }) => {
  const results = [];
  const transfer = [];
  for (const { path, size } of jobs) {
    let fd = -1;
    try {
      if (size < 0) {
        fs.accessSync(path);
        results.push({ ok: true });
        continue;
      }
      fd = fs.openSync(path, "r");
      // one byte more than expected, so a file that grew is noticed without a second read
      const buffer = new Uint8Array(size + 1);
      let filled = 0;
      for (;;) {
        const n = fs.readSync(fd, buffer, filled, buffer.length - filled, filled);
        if (n === 0 || filled + n > size) { filled += n; break; }
        filled += n;
        if (filled === size) break;
      }
      if (filled !== size) results.push({ error: path + ": " + (filled > size ? "larger than its recorded size " + size : filled + " bytes, recorded size " + size) });
      else { results.push({ ok: true, bytes: buffer }); transfer.push(buffer.buffer); }
    } catch (err) {
      results.push({ error: String(err && err.message || err), code: err && err.code });
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }
  parentPort.postMessage({ id, results }, transfer);
});
`;

const WORKERS = 1;
/** a batch larger than this goes in several messages, so one download cannot monopolise a worker */
const MAX_BATCH = 64;

interface Job {
  path: string;
  /** bytes expected; -1 asks only whether the file exists */
  size: number;
  resolve(value: Buffer | boolean): void;
  reject(err: Error): void;
}

interface Result {
  ok?: true;
  bytes?: Uint8Array;
  error?: string;
  code?: string;
}

export class LocalReader {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { jobs: Job[]; worker: Worker }>();
  private readonly busy = new Map<Worker, number>();
  private queue: Job[] = [];
  private flushScheduled = false;
  private nextId = 1;
  private next = 0;

  /** The file's bytes; rejects with an error whose `code` is `ENOENT` when it does not exist. */
  read(path: string, size: number): Promise<Buffer> {
    return this.enqueue(path, size) as Promise<Buffer>;
  }

  /** Whether the file exists. */
  async exists(path: string): Promise<boolean> {
    try {
      await this.enqueue(path, -1);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }

  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private enqueue(path: string, size: number): Promise<Buffer | boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path, size, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // everything asked for in this turn of the event loop goes in one message
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const queue = this.queue;
    this.queue = [];
    for (let i = 0; i < queue.length; i += MAX_BATCH) this.send(queue.slice(i, i + MAX_BATCH));
  }

  private send(jobs: Job[]): void {
    const worker = this.pick();
    const id = this.nextId++;
    this.pending.set(id, { jobs, worker });
    const load = this.busy.get(worker) ?? 0;
    if (load === 0) worker.ref();
    this.busy.set(worker, load + 1);
    worker.postMessage({ id, jobs: jobs.map(({ path, size }) => ({ path, size })) });
  }

  private pick(): Worker {
    if (this.workers.length < WORKERS) return this.spawn();
    // the least busy of the workers, round robin among equals
    this.next = (this.next + 1) % this.workers.length;
    let best = this.workers[this.next]!;
    for (const w of this.workers) if ((this.busy.get(w) ?? 0) < (this.busy.get(best) ?? 0)) best = w;
    return best;
  }

  private done(worker: Worker): void {
    const load = (this.busy.get(worker) ?? 1) - 1;
    this.busy.set(worker, load);
    if (load === 0) worker.unref();
  }

  private spawn(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } });
    worker.on("message", ({ id, results }: { id: number; results: Result[] }) => {
      const batch = this.pending.get(id);
      if (!batch) return;
      this.pending.delete(id);
      this.done(worker);
      batch.jobs.forEach((job, i) => {
        const r = results[i]!;
        if (r.error !== undefined) job.reject(Object.assign(new Error(r.error), r.code ? { code: r.code } : {}));
        else if (r.bytes) job.resolve(Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength - 1));
        else job.resolve(true);
      });
    });
    // a worker that dies fails its batches, and only those; the next batch starts a new one
    const retire = (err: Error) => {
      const at = this.workers.indexOf(worker);
      if (at !== -1) this.workers.splice(at, 1);
      this.busy.delete(worker);
      for (const [id, batch] of this.pending) {
        if (batch.worker !== worker) continue;
        this.pending.delete(id);
        for (const job of batch.jobs) job.reject(err);
      }
    };
    worker.on("error", (err) => retire(new Error(`file reader crashed: ${err.message}`, { cause: err })));
    worker.on("exit", (code) => retire(new Error(`file reader exited (code ${code})`)));
    worker.unref();
    this.workers.push(worker);
    this.busy.set(worker, 0);
    return worker;
  }
}
