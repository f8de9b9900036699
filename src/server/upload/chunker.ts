// Chunking a NAR upload off the main thread. The body's pieces go to a chunker worker
// (chunker-worker.ts), which validates the NAR, hashes it, cuts it into content-defined chunks and
// hashes each; the chunks come back with their hashes and their memory (moved, not copied). The
// main thread is left with the network, the database and the storage calls. Flow control: at most
// PIECES_IN_FLIGHT pieces are with the worker and QUEUED_CHUNKS chunks wait for the consumer
// before the body is read further, so memory stays bounded however slowly chunks are stored.
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { ChunkingParams } from "../../chunking/fastcdc.ts";
import { NixHash } from "../../nix/hash.ts";
import { NarError } from "../../nix/nar/parser.ts";
import type { FromChunker, ToChunker } from "./chunker-protocol.ts";

const PIECES_IN_FLIGHT = 8;
const QUEUED_CHUNKS = 32;
/**
 * The body arrives in pieces of 16-64 KiB, views into the socket's buffers: they are gathered
 * into pieces of this size (the copy a view needs anyway), so there are few messages to post.
 */
const PIECE_SIZE = 256 * 1024;

export interface HashedChunk {
  data: Buffer;
  /** `sha256:<hex>` */
  hash: string;
}

// from src/ the worker is the .ts file, from dist/ the emitted .js beside this one
const WORKER_URL = new URL(`./chunker-worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

interface PooledWorker {
  worker: Worker;
  sessions: Map<number, NarChunker>;
}

class ChunkerPool {
  private readonly workers: PooledWorker[] = [];
  private nextId = 1;
  private readonly size = Math.max(1, Math.min(4, availableParallelism()));

  attach(session: NarChunker): { slot: PooledWorker; id: number } {
    const idle = this.workers.find((w) => w.sessions.size === 0);
    const slot =
      idle ??
      (this.workers.length < this.size ? this.spawn() : this.workers.reduce((a, b) => (b.sessions.size < a.sessions.size ? b : a)));
    const id = this.nextId++;
    if (slot.sessions.size === 0) slot.worker.ref();
    slot.sessions.set(id, session);
    return { slot, id };
  }

  detach(slot: PooledWorker, id: number): void {
    if (slot.sessions.delete(id) && slot.sessions.size === 0) slot.worker.unref();
  }

  private spawn(): PooledWorker {
    const worker = new Worker(WORKER_URL, { resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 } });
    const slot: PooledWorker = { worker, sessions: new Map() };
    worker.on("message", (msg: FromChunker) => slot.sessions.get(msg.id)?.receive(msg));
    // a worker that dies fails its own uploads, and leaves the pool
    const retire = (err: Error) => {
      const at = this.workers.indexOf(slot);
      if (at !== -1) this.workers.splice(at, 1);
      for (const session of [...slot.sessions.values()]) session.fail(err);
      slot.sessions.clear();
    };
    worker.on("error", (err) => retire(new Error(`chunker worker crashed: ${err.message}`, { cause: err })));
    worker.on("exit", (code) => retire(new Error(`chunker worker exited (code ${code})`)));
    worker.unref();
    this.workers.push(slot);
    return slot;
  }
}

const pool = new ChunkerPool();

/** One upload's NAR through a chunker worker: `chunks()` once, then `result()`. */
export class NarChunker {
  /** body bytes read so far */
  received = 0;
  private readonly queue: HashedChunk[] = [];
  private inFlight = 0;
  private outcome: { narHash: NixHash; narSize: number } | null = null;
  private error: Error | null = null;
  private closed = false;
  private wakeConsumer: (() => void) | null = null;
  private wakePump: (() => void) | null = null;
  private readonly source: AsyncIterable<Uint8Array>;
  private readonly slot: PooledWorker;
  private readonly id: number;

  constructor(source: AsyncIterable<Uint8Array>, params: ChunkingParams) {
    this.source = source;
    ({ slot: this.slot, id: this.id } = pool.attach(this));
    this.post({ type: "open", id: this.id, params: { minSize: params.minSize, avgSize: params.avgSize, maxSize: params.maxSize } });
  }

  /** The chunks in order; throws a NarError for an invalid NAR, or the body's own error. */
  async *chunks(): AsyncGenerator<HashedChunk> {
    const pumping = this.pump();
    try {
      for (;;) {
        const chunk = this.queue.shift();
        if (chunk) {
          this.notify();
          yield chunk;
          continue;
        }
        if (this.error) throw this.error;
        if (this.outcome) return;
        await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
      }
    } finally {
      this.close();
      // not awaited: a pump waiting on a stalled body ends with the request (its errors are kept)
      void pumping;
    }
  }

  /** The NAR's hash and size, once `chunks()` has ended normally. */
  result(): { narHash: NixHash; narSize: number } {
    if (!this.outcome) throw new Error("NarChunker.result() called before the NAR was complete");
    return this.outcome;
  }

  /** @internal a message from the worker */
  receive(msg: FromChunker): void {
    if (this.closed) return;
    if (msg.type === "chunks") {
      this.inFlight--;
      for (const c of msg.chunks) this.queue.push({ data: Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength), hash: `sha256:${c.hash}` });
    } else if (msg.type === "done") {
      this.outcome = { narHash: NixHash.fromDigest("sha256", Buffer.from(msg.narHash, "hex")), narSize: msg.narSize };
      pool.detach(this.slot, this.id);
    } else {
      const err = msg.narOffset !== undefined ? new NarError("", msg.narOffset) : new Error(msg.message);
      err.message = msg.message;
      this.fail(err);
      return;
    }
    this.notify();
  }

  /** @internal the upload fails (worker error or crash, body error) */
  fail(err: Error): void {
    this.error ??= err;
    this.notify();
  }

  private notify(): void {
    const consumer = this.wakeConsumer;
    const pump = this.wakePump;
    this.wakeConsumer = this.wakePump = null;
    consumer?.();
    pump?.();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.outcome) this.post({ type: "close", id: this.id });
    pool.detach(this.slot, this.id);
    this.notify();
  }

  private post(msg: ToChunker, transfer: ArrayBuffer[] = []): void {
    this.slot.worker.postMessage(msg, transfer);
  }

  /** Reads the body into the worker, in pieces of PIECE_SIZE, while it has room. */
  private async pump(): Promise<void> {
    let piece = new Uint8Array(PIECE_SIZE);
    let filled = 0;
    const send = async () => {
      this.inFlight++;
      this.post({ type: "data", id: this.id, piece: filled === piece.length ? piece : piece.subarray(0, filled) }, [piece.buffer]);
      piece = new Uint8Array(PIECE_SIZE);
      filled = 0;
      while ((this.inFlight >= PIECES_IN_FLIGHT || this.queue.length >= QUEUED_CHUNKS) && !this.closed && !this.error) {
        await new Promise<void>((resolve) => (this.wakePump = resolve));
      }
    };
    try {
      for await (const raw of this.source) {
        if (this.closed || this.error) return;
        this.received += raw.length;
        let at = 0;
        while (at < raw.length) {
          const n = Math.min(raw.length - at, PIECE_SIZE - filled);
          piece.set(raw.subarray(at, at + n), filled);
          filled += n;
          at += n;
          if (filled === PIECE_SIZE) await send();
          if (this.closed || this.error) return;
        }
      }
      if (filled > 0) await send();
      if (!this.closed && !this.error) this.post({ type: "end", id: this.id });
    } catch (err) {
      this.fail(err as Error);
    }
  }
}
