// Chunk compression off the main thread: a few worker threads run the synchronous zstd/brotli
// calls, so compressing (the heaviest step of an upload: ~90 MB/s per core at zstd level 8) runs
// on every core while the main thread hashes, chunks and talks to the database. The worker is
// plain CommonJS evaluated from a string, so it runs the same from src/ and from dist/.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const zlib = require("node:zlib");
parentPort.on("message", ({ id, type, level, data }) => {
  try {
    const out = type === "zstd"
      ? zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } })
      : zlib.brotliCompressSync(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.byteLength } });
    const copy = new Uint8Array(out.length);
    copy.set(out);
    parentPort.postMessage({ id, out: copy }, [copy.buffer]);
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.message || error) });
  }
});
`;

interface Pending {
  resolve(out: Buffer): void;
  reject(err: Error): void;
}

interface PooledWorker {
  worker: Worker;
  busy: number;
}

export class CompressionPool {
  private readonly workers: PooledWorker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly size: number;

  constructor(size = Math.max(1, Math.min(8, availableParallelism()))) {
    this.size = size;
  }

  /** Compress `data`, which is consumed: when it owns its memory, that memory moves to the worker. */
  compress(type: "zstd" | "brotli", level: number, data: Uint8Array): Promise<Buffer> {
    const slot = this.pick();
    const id = this.nextId++;
    // a worker with work keeps the process alive until it answers; an idle one does not
    if (slot.busy++ === 0) slot.worker.ref();
    const done = () => {
      if (--slot.busy === 0) slot.worker.unref();
    };
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(id, {
        resolve: (out) => {
          done();
          resolve(out);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      });
      // a buffer that owns its whole ArrayBuffer (every chunk above 4 KiB) is moved, not copied
      const owned = data.byteOffset === 0 && data.buffer instanceof ArrayBuffer && data.byteLength === data.buffer.byteLength;
      slot.worker.postMessage({ id, type, level, data }, owned ? [data.buffer as ArrayBuffer] : []);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
    this.workers.length = 0;
  }

  private pick(): PooledWorker {
    const idle = this.workers.find((w) => w.busy === 0);
    if (idle) return idle;
    if (this.workers.length < this.size) return this.spawn();
    return this.workers.reduce((a, b) => (b.busy < a.busy ? b : a));
  }

  private spawn(): PooledWorker {
    // small heaps: a worker only holds the chunk it is compressing
    const worker = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } });
    const slot: PooledWorker = { worker, busy: 0 };
    worker.on("message", (msg: { id: number; out?: Uint8Array; error?: string }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.out) p.resolve(Buffer.from(msg.out.buffer, msg.out.byteOffset, msg.out.byteLength));
      else p.reject(new Error(`compression failed: ${msg.error ?? "unknown error"}`));
    });
    worker.on("error", (err) => {
      // a crashed worker fails what it had; the next call spawns a fresh one
      this.workers.splice(this.workers.indexOf(slot), 1);
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(err);
      }
    });
    // an idle pool must not keep the process alive (after the listeners, which would re-ref it)
    worker.unref();
    this.workers.push(slot);
    return slot;
  }
}

let shared: CompressionPool | null = null;

/** The process-wide pool, created on first use. */
export function compressionPool(): CompressionPool {
  shared ??= new CompressionPool();
  return shared;
}
