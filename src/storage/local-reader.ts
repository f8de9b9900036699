// Whole-file reads of chunk files for NAR downloads, off the event loop and in batches. Read
// through the libuv thread pool, a chunk file costs three round trips (open, read, close), and a
// 600 MB NAR has some 9,000 of them: the event loop ends up waiting on the pool instead of
// writing to the socket. Here every read asked for in one turn of the event loop goes to a CPU
// worker of the process's pool (workers/pool.ts) as one job; the worker opens, reads and closes
// each file with synchronous calls (workers/read-files.ts) and sends the buffers back in one
// message, moved rather than copied. A cold page cache blocks that worker, never the event loop.
// Reads spawn a worker only when the pool has none: a download keeps one worker busy at most
// (the reader's own single worker measured as fast as two), and a worker is an isolate's memory.
// A worker that dies fails the reads it had, and only those (the pool replaces it).
import { workerPool } from "../workers/pool.ts";
import type { FileReadAnswer } from "../workers/protocol.ts";

/** a batch larger than this goes in several jobs, so one download cannot monopolise a worker */
const MAX_BATCH = 64;

interface Pending {
  path: string;
  /** bytes expected; -1 asks only whether the file exists */
  size: number;
  resolve(value: Buffer | boolean): void;
  reject(err: Error): void;
}

function settle(job: Pending, answer: FileReadAnswer | undefined): void {
  if (!answer) job.reject(new Error(`${job.path}: no answer from the file reader`));
  else if (answer.error !== undefined) job.reject(Object.assign(new Error(answer.error), answer.code ? { code: answer.code } : {}));
  // the worker read one byte more than expected (none was there): not part of the file
  else if (answer.bytes) job.resolve(Buffer.from(answer.bytes.buffer, answer.bytes.byteOffset, answer.bytes.byteLength - 1));
  else job.resolve(true);
}

export class LocalReader {
  private queue: Pending[] = [];
  private flushScheduled = false;

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

  private send(batch: Pending[]): void {
    const files = batch.map(({ path, size }) => ({ path, size }));
    workerPool()
      // light: reads share a busy worker rather than spawn another isolate (workers/pool.ts)
      .request((id) => ({ kind: "read-files", id, files }), [], { light: true })
      .then((answer) => {
        if (answer.kind !== "files") throw new Error(`file reads: ${answer.kind === "error" ? answer.message : `unexpected answer ${answer.kind}`}`);
        batch.forEach((job, i) => settle(job, answer.results[i]));
      })
      // the worker died (or answered nonsense): these reads fail, the downloads they serve abort
      .catch((err: unknown) => {
        for (const job of batch) job.reject(err as Error);
      });
  }
}
