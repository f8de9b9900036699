// The main thread's side of one NAR's single pass (the worker's side: src/workers/nar-pass.ts).
// A chunked upload's body is written into the pass's ring (src/workers/ring.ts), shared with its
// two workers, and what comes back is batches of chunk hashes and sizes (the caller answers each
// batch through the database and asks for the frames of the chunks it found new, then releases
// the batch, which frees its stretch of the ring). A whole NAR's body goes to one worker in
// pieces (moved, not copied) and its stored (compressed) bytes come back. Chunk bytes never come
// back. Flow control: at most PIECES_IN_FLIGHT pieces are with the worker and QUEUED items wait
// for the consumer before the body is read further (and, chunked, the ring has room), so memory
// stays bounded however slowly chunks are stored.
import { MessageChannel } from "node:worker_threads";
import type { ChunkingParams } from "../../chunking/fastcdc.ts";
import { compressBufferHashed, type CompressionType } from "../../compression/index.ts";
import { NixHash } from "../../nix/hash.ts";
import { NarError } from "../../nix/nar/parser.ts";
import { workerPool, type Job } from "../../workers/pool.ts";
import type { ChunkBatch, FromWorker, NarPassOptions } from "../../workers/protocol.ts";
import { newRing, RingLayout, ringSize, type Ring } from "../../workers/ring.ts";
import { adopt } from "../../util/moved.ts";

const PIECES_IN_FLIGHT = 4;
const QUEUED = 4;
/**
 * The body arrives in pieces of 16-64 KiB, views into the socket's buffers: they are gathered
 * into pieces of this size (the one copy of the body on this thread, into the ring or a piece of
 * its own), so there are few messages to post.
 */
const PIECE_SIZE = 512 * 1024;
/** Pieces written into a chunked pass's ring (no copy depends on their size there: fewer messages). */
const RING_PIECE = 1024 * 1024;

export type { ChunkBatch };

export interface StoredFrame {
  frame: Buffer;
  /** `sha256:<hex>` of the frame */
  fileHash: string;
}

export interface PassResult {
  narHash: NixHash;
  narSize: number;
  /** the `.ls` listing, zstd-compressed */
  listing: Buffer | null;
  /** whole: `sha256:<hex>` and size of the stored bytes */
  fileHash?: string;
  fileSize?: number;
}

export interface PassOptions {
  /** null: a whole NAR (no chunking), its stored bytes come back through `output()` */
  chunking: ChunkingParams | null;
  compression: { type: CompressionType; level: number };
  batchSize: number;
  /** the NAR's declared size (the source yields no more): a chunked pass's ring is no bigger than the NAR */
  narSize?: number;
}

function workerOptions(o: PassOptions): NarPassOptions {
  const t = o.compression.type;
  // xz has no worker codec (lzma-native runs its own threads): raw bytes come back for it
  const raw = t === "xz";
  return { chunking: o.chunking, batchSize: o.batchSize, codec: { type: raw ? "none" : t, level: o.compression.level, raw } };
}

type Item = ChunkBatch | Buffer;

/** One NAR through the pool: `batches()` (chunked) or `output()` (whole) once, then `result()`. */
export class NarPassSession {
  /** body bytes read so far */
  received = 0;
  private readonly queue: Item[] = [];
  private inFlight = 0;
  private outcome: PassResult | null = null;
  private error: Error | null = null;
  private closed = false;
  private wakeConsumer: (() => void) | null = null;
  private wakePump: (() => void) | null = null;
  private readonly source: AsyncIterable<Uint8Array>;
  private readonly job: Job;
  private readonly options: PassOptions;
  /** frames asked for and not answered yet, by ask number (either worker of the pass may answer) */
  private readonly asked = new Map<number, { resolve(f: StoredFrame[]): void; reject(e: Error): void }>();
  private nextAsk = 0;
  /** batches the worker has cut (some hashed by its partner); the next one to queue; those arrived early */
  private sealed = 0;
  private nextSeq = 0;
  private readonly early = new Map<number, ChunkBatch>();
  /** batches the partner hashed (the rest were hashed by the cutting worker) */
  hashedByPartner = 0;
  /** frames the cutting worker compressed itself, its partner being backed up */
  compressedByCutter = 0;
  /** chunked: the ring the body is written into (workers/ring.ts) and where its bytes are */
  private readonly ring: Ring | null = null;
  private readonly layout: RingLayout | null = null;
  /** NAR offset of each batch handed out and not released yet, in NAR order; bytes in batches handed out */
  private readonly unreleased = new Map<number, number>();
  private handedOut = 0;
  private released: number[] = [];

  constructor(source: AsyncIterable<Uint8Array>, options: PassOptions) {
    this.source = source;
    this.options = options;
    // a chunked pass pairs two workers: one parses, hashes and cuts, the other compresses
    this.job = workerPool().open({ receive: (msg) => this.receive(msg), fail: (err) => this.fail(err) }, { pair: options.chunking !== null });
    const opts = workerOptions(options);
    if (options.chunking) {
      const max = options.chunking.maxSize;
      const size = ringSize(options.narSize ?? 0, max, options.batchSize, RING_PIECE, PIECES_IN_FLIGHT);
      this.ring = newRing(size);
      this.layout = new RingLayout(size, max);
    }
    const ring = this.ring ? { shared: this.ring.memory ?? this.ring.buffer, base: this.ring.base } : undefined;
    if (this.job.partnered) {
      const { port1, port2 } = new MessageChannel();
      const busy = new Int32Array(new SharedArrayBuffer(4));
      this.job.post({ kind: "nar-open", id: this.job.id, options: opts, port: port1, busy, ring }, [port1]);
      this.job.postPartner({ kind: "frames-open", id: this.job.id, port: port2, codec: opts.codec, busy, ring }, [port2]);
    } else {
      this.job.post({ kind: "nar-open", id: this.job.id, options: opts, ring });
    }
  }

  /** Chunked: the batches in NAR order; throws a NarError for an invalid NAR, or the body's own error. */
  batches(): AsyncGenerator<ChunkBatch> {
    return this.items() as AsyncGenerator<ChunkBatch>;
  }

  /** Whole: the stored bytes in order. */
  output(): AsyncGenerator<Buffer> {
    return this.items() as AsyncGenerator<Buffer>;
  }

  /** The NAR's hash, size and listing, once the items have ended normally. */
  result(): PassResult {
    if (!this.outcome) throw new Error("NarPassSession.result() called before the NAR was complete");
    return this.outcome;
  }

  /** The stored frames of these chunks of a batch (compressed on the worker; xz here). */
  async frames(batch: number, indexes: readonly number[]): Promise<StoredFrame[]> {
    if (indexes.length === 0) return [];
    if (this.error) throw this.error;
    const ask = this.nextAsk++;
    const answer = new Promise<StoredFrame[]>((resolve, reject) => this.asked.set(ask, { resolve, reject }));
    this.job.post({ kind: "nar-compress", id: this.job.id, batch, ask, indexes: [...indexes], ...this.takeReleased() });
    const frames = await answer;
    const c = this.options.compression;
    if (c.type !== "xz") return frames;
    return Promise.all(
      frames.map(async (f) => {
        const { data, sha256 } = await compressBufferHashed(c.type, c.level, f.frame);
        return { frame: data, fileHash: `sha256:${sha256}` };
      }),
    );
  }

  /** The batch's chunk bytes may go (its new chunks are stored, or the upload failed). */
  release(batch: number): void {
    // told the worker with the next message (it only drops its views: the ring's space is the
    // main thread's to reuse, right now)
    this.released.push(batch);
    if (!this.layout || !this.unreleased.delete(batch)) return;
    // the ring is free up to the oldest batch still held (or all that was handed out)
    let oldest = this.handedOut;
    for (const start of this.unreleased.values()) {
      oldest = start;
      break;
    }
    this.layout.reclaim(oldest);
    this.notify();
  }

  /** Batches released since the last message to the worker, for the next one. */
  private takeReleased(): { released?: number[] } {
    if (this.released.length === 0) return {};
    const released = this.released;
    this.released = [];
    return { released };
  }

  /** The upload is over (stored, or failed): the worker forgets it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.job.post({ kind: "nar-close", id: this.job.id });
    this.job.end();
    this.fail(new Error("the NAR pass was closed"));
  }

  private async *items(): AsyncGenerator<Item> {
    const pumping = this.pump();
    try {
      for (;;) {
        const item = this.queue.shift();
        if (item) {
          this.notify();
          yield item;
          continue;
        }
        if (this.error) throw this.error;
        // the last batches may come from the partner after the result
        if (this.outcome && this.nextSeq >= this.sealed) return;
        await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
      }
    } finally {
      // not awaited: a pump waiting on a stalled body ends with the request (its errors are kept)
      void pumping;
    }
  }

  private receive(msg: FromWorker): void {
    if (msg.kind === "nar-progress") {
      this.inFlight--;
      this.sealed = msg.sealed;
      for (const b of msg.batches) this.arrive(b);
      for (const o of msg.out) this.queue.push(Buffer.from(o.buffer, o.byteOffset, o.byteLength));
      if (msg.result) {
        const r = msg.result;
        this.outcome = {
          narHash: NixHash.fromDigest("sha256", Buffer.from(r.narHash, "hex")),
          narSize: r.narSize,
          listing: r.listing ? Buffer.from(r.listing.buffer, r.listing.byteOffset, r.listing.byteLength) : null,
          ...(r.fileHash !== undefined ? { fileHash: `sha256:${r.fileHash}`, fileSize: r.fileSize! } : {}),
        };
      }
    } else if (msg.kind === "nar-batch") {
      this.hashedByPartner++;
      this.arrive(msg.batch);
    } else if (msg.kind === "nar-frames") {
      if (msg.byCutter) this.compressedByCutter++;
      const waiter = this.asked.get(msg.ask);
      if (!waiter) return;
      this.asked.delete(msg.ask);
      // one buffer for the batch: each frame a view into it
      const data = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
      // freed as soon as its frames are stored (ChunkStore), not at the next collection
      adopt(data.buffer);
      let at = 0;
      waiter.resolve(
        msg.lengths.map((n, i) => {
          const frame = data.subarray(at, at + n);
          at += n;
          return { frame, fileHash: `sha256:${msg.fileHashes[i]!}` };
        }),
      );
      return;
    } else if (msg.kind === "error") {
      const err = msg.narOffset !== undefined ? new NarError("", msg.narOffset) : new Error(msg.message);
      err.message = msg.message;
      this.fail(err);
      return;
    }
    this.notify();
  }

  /** Batches reach the consumer in NAR order, whichever worker hashed them. */
  private arrive(batch: ChunkBatch): void {
    this.early.set(batch.seq, batch);
    for (let b = this.early.get(this.nextSeq); b; b = this.early.get(this.nextSeq)) {
      this.early.delete(this.nextSeq++);
      this.queue.push(b);
      this.unreleased.set(b.seq, this.handedOut);
      for (const n of b.sizes) this.handedOut += n;
    }
  }

  /** Items cut but not yet taken by the consumer (queued, or still being hashed). */
  private get waiting(): number {
    return this.queue.length + this.sealed - this.nextSeq;
  }

  private fail(err: Error): void {
    this.error ??= err;
    for (const w of this.asked.values()) w.reject(this.error);
    this.asked.clear();
    this.notify();
  }

  private notify(): void {
    const consumer = this.wakeConsumer;
    const pump = this.wakePump;
    this.wakeConsumer = this.wakePump = null;
    consumer?.();
    pump?.();
  }

  /** Waits while the worker has enough to do (pieces in flight, batches not yet taken). */
  private async backPressure(): Promise<void> {
    while ((this.inFlight >= PIECES_IN_FLIGHT || this.waiting >= QUEUED) && !this.closed && !this.error) {
      await new Promise<void>((resolve) => (this.wakePump = resolve));
    }
  }

  /**
   * Chunked: reads the body straight into the ring, in pieces of up to RING_PIECE written back
   * to back, each handed to the cutting worker by its place; waits for released batches when
   * the ring is full.
   */
  private pumpRing(ring: Ring, layout: RingLayout): Promise<void> {
    const bytes = new Uint8Array(ring.buffer, ring.base, ring.size);
    const declared = this.options.narSize ?? Number.POSITIVE_INFINITY;
    let written = 0;
    return this.gather(
      async () => {
        const room = Math.max(1, Math.min(RING_PIECE, declared - written));
        for (;;) {
          if (this.closed || this.error) return null;
          const p = layout.place(room);
          if (p) return { bytes, at: p.at, room, wrapped: p.wrapped };
          await new Promise<void>((resolve) => (this.wakePump = resolve));
        }
      },
      (piece, filled) => {
        layout.commit(filled);
        written += filled;
        if (filled > 0) this.job.post({ kind: "nar-ring", id: this.job.id, at: piece.at, length: filled, wrapped: piece.wrapped, ...this.takeReleased() });
        return filled > 0;
      },
    );
  }

  /** Reads the body into the worker, in pieces of PIECE_SIZE, while it has room. */
  private pump(): Promise<void> {
    if (this.ring && this.layout) return this.pumpRing(this.ring, this.layout);
    return this.gather(
      async () => ({ bytes: new Uint8Array(PIECE_SIZE), at: 0, room: PIECE_SIZE, wrapped: false }),
      (piece, filled) => {
        if (filled > 0) this.job.post({ kind: "nar-data", id: this.job.id, piece: piece.bytes.subarray(0, filled) }, [piece.bytes.buffer as ArrayBuffer]);
        return filled > 0;
      },
    );
  }

  /**
   * Copies the body into pieces (`open` says where the next one goes: null, stop), hands each
   * filled one on (`hand`: true when it went to the worker, which answers it), then ends the NAR.
   */
  private async gather(open: () => Promise<GatherPiece | null>, hand: (piece: GatherPiece, filled: number) => boolean): Promise<void> {
    let piece: GatherPiece | null = null;
    let filled = 0;
    const send = async (p: GatherPiece) => {
      piece = null;
      if (hand(p, filled)) this.inFlight++;
      filled = 0;
      await this.backPressure();
    };
    try {
      for await (const raw of this.source) {
        if (this.closed || this.error) return;
        this.received += raw.length;
        let at = 0;
        while (at < raw.length) {
          piece ??= await open();
          if (!piece) return;
          const p: GatherPiece = piece;
          const n = Math.min(raw.length - at, p.room - filled);
          p.bytes.set(raw.subarray(at, at + n), p.at + filled);
          filled += n;
          at += n;
          if (filled === p.room) await send(p);
          if (this.closed || this.error) return;
        }
      }
      const last: GatherPiece | null = piece;
      if (last) await send(last);
      if (!this.closed && !this.error) {
        this.inFlight++;
        this.job.post({ kind: "nar-end", id: this.job.id, ...this.takeReleased() });
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }
}

/** Where a piece of the body is gathered: `bytes[at, at + room)`; `wrapped`: a new lap of the ring. */
interface GatherPiece {
  bytes: Uint8Array;
  at: number;
  room: number;
  wrapped: boolean;
}
