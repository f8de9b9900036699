// Chunk compression off the main thread: a few worker threads run the synchronous zstd/brotli
// calls, so compressing (the heaviest step of an upload: ~90 MB/s per core at zstd level 8) runs
// on every core while the chunker worker (server/upload/chunker.ts) validates, hashes and cuts the
// NAR and the main thread talks to the database. The worker is
// plain CommonJS evaluated from a string, so it runs the same from src/ and from dist/.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const zlib = require("node:zlib");
const { createHash } = require("node:crypto");
parentPort.on("message", ({ id, type, level, data, hash }) => {
  try {
    // the size given up front lets zstd size its window and tables to the chunk (less to set up
    // and free per chunk); the frame written is the same
    const out = type === "zstd"
      ? zlib.zstdCompressSync(data, { pledgedSrcSize: data.byteLength, params: { [zlib.constants.ZSTD_c_compressionLevel]: level } })
      : zlib.brotliCompressSync(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.byteLength } });
    // moved, not copied, when it owns its memory (a small result may be a view into a shared pool)
    const owned = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
    const copy = owned ? out : new Uint8Array(out);
    const sha256 = hash ? createHash("sha256").update(copy).digest("hex") : undefined;
    parentPort.postMessage({ id, out: copy, sha256 }, [copy.buffer]);
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.message || error) });
  }
});
`;

export interface Compressed {
  out: Buffer;
  /** hex SHA-256 of `out`, when asked for */
  sha256?: string;
}

interface Pending {
  resolve(result: Compressed): void;
  reject(err: Error): void;
}

interface PooledWorker {
  worker: Worker;
  /** this worker's jobs: a worker that dies fails these and no others */
  pending: Map<number, Pending>;
}

export interface CompressionPoolOptions {
  /** how many workers at most (default: the cores, up to 8) */
  size?: number;
  /** the CommonJS source each worker evaluates (default: the zstd/brotli worker above); tests pass one that crashes */
  workerSource?: string;
}

export class CompressionPool {
  private readonly workers: PooledWorker[] = [];
  private nextId = 1;
  private readonly size: number;
  private readonly workerSource: string;

  constructor(options: CompressionPoolOptions = {}) {
    this.size = options.size ?? Math.max(1, Math.min(8, availableParallelism()));
    this.workerSource = options.workerSource ?? WORKER_SOURCE;
  }

  /** Compress `data`, which is consumed: when it owns its memory, that memory moves to the worker. */
  async compress(type: "zstd" | "brotli", level: number, data: Uint8Array): Promise<Buffer> {
    return (await this.run(type, level, data, false)).out;
  }

  /** Compress `data` (consumed, as `compress`) and hash the result in the worker too. */
  async compressHashed(type: "zstd" | "brotli", level: number, data: Uint8Array): Promise<{ out: Buffer; sha256: string }> {
    const { out, sha256 } = await this.run(type, level, data, true);
    return { out, sha256: sha256! };
  }

  private run(type: "zstd" | "brotli", level: number, data: Uint8Array, hash: boolean): Promise<Compressed> {
    const slot = this.pick();
    const id = this.nextId++;
    // a worker with work keeps the process alive until it answers; an idle one does not
    if (slot.pending.size === 0) slot.worker.ref();
    return new Promise<Compressed>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      // a buffer that owns its whole ArrayBuffer (every chunk above 4 KiB) is moved, not copied
      const owned = data.byteOffset === 0 && data.buffer instanceof ArrayBuffer && data.byteLength === data.buffer.byteLength;
      slot.worker.postMessage({ id, type, level, data, hash }, owned ? [data.buffer as ArrayBuffer] : []);
    });
  }

  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }

  private pick(): PooledWorker {
    const idle = this.workers.find((w) => w.pending.size === 0);
    if (idle) return idle;
    if (this.workers.length < this.size) return this.spawn();
    return this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private spawn(): PooledWorker {
    // small heaps: a worker only holds the chunk it is compressing
    const worker = new Worker(this.workerSource, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 } });
    const slot: PooledWorker = { worker, pending: new Map() };
    const settle = (id: number): Pending | undefined => {
      const p = slot.pending.get(id);
      slot.pending.delete(id);
      if (p && slot.pending.size === 0) worker.unref();
      return p;
    };
    worker.on("message", (msg: { id: number; out?: Uint8Array; sha256?: string; error?: string }) => {
      const p = settle(msg.id);
      if (!p) return;
      if (msg.out) p.resolve({ out: Buffer.from(msg.out.buffer, msg.out.byteOffset, msg.out.byteLength), ...(msg.sha256 ? { sha256: msg.sha256 } : {}) });
      else p.reject(new Error(`compression failed: ${msg.error ?? "unknown error"}`));
    });
    // A worker that crashes ('error', then 'exit') or exits on its own ('exit' only) fails the
    // jobs it had, and only those; it leaves the pool, so the next call spawns a fresh one.
    const retire = (err: Error) => {
      const at = this.workers.indexOf(slot);
      if (at !== -1) this.workers.splice(at, 1);
      for (const id of [...slot.pending.keys()]) settle(id)?.reject(err);
    };
    worker.on("error", (err) => retire(new Error(`compression worker crashed: ${err.message}`, { cause: err })));
    worker.on("exit", (code) => retire(new Error(`compression worker exited (code ${code})`)));
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

/**
 * Puts `pool` in place of the process-wide pool and returns the one it replaces (null if none
 * was made yet), so a test can run the server on a pool whose workers fail, then put it back.
 */
export function replaceCompressionPool(pool: CompressionPool | null): CompressionPool | null {
  const previous = shared;
  shared = pool;
  return previous;
}
