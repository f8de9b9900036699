// One NAR's single pass, on a CPU worker (worker.ts runs it; the main thread's side is
// server/upload/nar-pass.ts). Each byte is parsed once (validation, and the `.ls` listing from
// the same parse), hashed into the NAR's SHA-256, and then either cut into content-defined chunks
// (each hashed; the main thread gets only hashes and sizes, a batch at a time, and asks back for
// the frames of the chunks it found new) or, for a whole NAR, compressed as one stream. Chunk
// bytes stay here until the main thread releases their batch.
import { createHash, type Hash } from "node:crypto";
import { HeldChunker } from "../chunking/held.ts";
import { NarListing } from "../nix/nar/listing.ts";
import { tookIn } from "./collect.ts";
import { compressBatch, frameCompressor, syncStream, type FrameCompressor, type SyncStream } from "./frames.ts";
import type { ChunkBatch, NarPassOptions, NarPassResult, WireRing } from "./protocol.ts";
import { wasmCutter } from "../chunking/gear-wasm.ts";
import { ringBuffer } from "./ring.ts";

/** Output pieces of a whole NAR's compressor: big pieces, few messages. */
const WHOLE_CHUNK = 256 * 1024;

export interface Frames {
  data: Uint8Array;
  lengths: number[];
  fileHashes: string[];
}

/** A whole NAR's bytes through one streaming compressor (sync calls on this thread, no threadpool hop). */
class WholeStream {
  private readonly stream: SyncStream | null;
  private readonly hash = createHash("sha256");
  /** raw: the main thread compresses (and hashes) the bytes */
  private readonly raw: boolean;
  size = 0;

  constructor(codec: NarPassOptions["codec"]) {
    this.raw = codec.raw;
    this.stream = codec.raw || codec.type === "none" ? null : syncStream(codec.type, codec.level, WHOLE_CHUNK);
  }

  /** The stored bytes for `piece` (often none yet); `last` ends the stream. */
  write(piece: Uint8Array, last: boolean): Uint8Array[] {
    // raw or uncompressed: the piece itself is the output (a copy: it is not ours to move back)
    const out = this.stream ? this.stream.write(piece, last) : piece.byteLength > 0 ? [Uint8Array.from(piece)] : [];
    for (const o of out) {
      if (!this.raw) this.hash.update(o);
      this.size += o.byteLength;
    }
    return out;
  }

  get stored(): boolean {
    return !this.raw;
  }

  fileHash(): string {
    return this.hash.digest("hex");
  }
}

/** Hands a batch's chunks (views: copy them to send them) to another thread to hash; false: hash them here. */
export type HashDelegate = (batch: number, chunks: Uint8Array[]) => boolean;

export class NarPass {
  private readonly listing = new NarListing();
  private readonly narHash: Hash = createHash("sha256");
  private narSize = 0;
  private readonly chunker: HeldChunker | null;
  private readonly whole: WholeStream | null;
  private readonly compressor: FrameCompressor;
  private readonly batchSize: number;
  /** chunks cut but not yet in a full batch */
  private pending: Uint8Array[] = [];
  private nextBatch = 0;
  private readonly delegate: HashDelegate | null;
  /** batches the main thread has not released: their chunks' bytes */
  private readonly held = new Map<number, Uint8Array[]>();

  /** the memory of the pass's ring (ring.ts), when the main thread writes the NAR there, and where the ring starts in it */
  readonly ring: SharedArrayBuffer | null;
  private readonly ringBase: number;

  constructor(options: NarPassOptions, delegate: HashDelegate | null = null, ring: WireRing | null = null) {
    const memory = ring && ring.shared instanceof WebAssembly.Memory ? ring.shared : null;
    this.ring = ring ? ringBuffer(ring.shared) : null;
    this.ringBase = ring?.base ?? 0;
    this.batchSize = options.batchSize;
    this.delegate = delegate;
    // in a WebAssembly memory, chunks are cut by the WebAssembly loop, in place
    const wasm = memory ? wasmCutter(memory) : null;
    this.chunker = options.chunking ? new HeldChunker(options.chunking, wasm && this.ring ? { buffer: this.ring, cut: wasm } : null) : null;
    this.whole = options.chunking ? null : new WholeStream(options.codec);
    // raw: the bytes themselves (the main thread's codec takes them)
    this.compressor = frameCompressor(options.codec.raw ? "none" : options.codec.type, options.codec.level);
  }

  /**
   * NAR bytes the main thread wrote into the ring at `at` (ring.ts): chunks are views of the
   * ring; `wrapped`, a new lap: the carry moves to just before `at`, so it and the piece are one.
   */
  updateRing(at: number, length: number, wrapped: boolean): { batches: ChunkBatch[]; out: Uint8Array[] } {
    const ring = this.ring;
    if (!ring || !this.chunker) throw new Error("this pass has no ring");
    const start = this.ringBase + at;
    if (wrapped) {
      const n = this.chunker.carried;
      this.chunker.moveCarry(new Uint8Array(ring, start - n, n));
    }
    return this.update(new Uint8Array(ring, start, length), false);
  }

  /**
   * Feed NAR bytes (owned: chunks may view them; `garbage`: moved in for this call only, so
   * counted towards the next collection). Validated before anything is cut or stored.
   */
  update(piece: Uint8Array, garbage = true): { batches: ChunkBatch[]; out: Uint8Array[] } {
    const buf = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    // throws a NarError on a malformed NAR: nothing past it is cut, compressed or stored
    this.listing.update(buf);
    this.narHash.update(buf);
    this.narSize += piece.byteLength;
    if (garbage) tookIn(piece.byteLength);
    if (this.whole) return { batches: [], out: this.whole.write(piece, false) };
    const batches: ChunkBatch[] = [];
    this.chunker!.push(piece, (chunk) => this.add(chunk, batches));
    return { batches, out: [] };
  }

  /** The NAR ended: the last chunks (or stored bytes) and the result. */
  end(): { batches: ChunkBatch[]; out: Uint8Array[]; result: NarPassResult } {
    const json = this.listing.finish();
    const batches: ChunkBatch[] = [];
    let out: Uint8Array[] = [];
    if (this.chunker) {
      this.chunker.end((chunk) => this.add(chunk, batches));
      if (this.pending.length > 0) this.seal(batches);
    } else {
      out = this.whole!.write(new Uint8Array(0), true);
    }
    const listing = frameCompressor("zstd", 3).compress(Buffer.from(json));
    const result: NarPassResult = { narHash: this.narHash.digest("hex"), narSize: this.narSize, listing };
    if (this.whole?.stored) {
      result.fileHash = this.whole.fileHash();
      result.fileSize = this.whole.size;
    }
    return { batches, out, result };
  }

  /** Some chunks of a held batch (views: copy them to send them anywhere). */
  chunks(batch: number, indexes: readonly number[]): Uint8Array[] {
    const chunks = this.held.get(batch);
    if (!chunks) throw new Error(`batch ${batch} is not held`);
    return indexes.map((i) => {
      const chunk = chunks[i];
      if (!chunk) throw new Error(`batch ${batch} has no chunk ${i}`);
      return chunk;
    });
  }

  /** The stored frames of some chunks of a held batch, back to back (raw: the bytes, for the main thread's codec). */
  frames(batch: number, indexes: readonly number[]): Frames {
    return compressBatch(this.compressor, this.chunks(batch, indexes));
  }

  release(batch: number): void {
    this.held.delete(batch);
  }

  /** Batches cut so far (those another thread hashes included). */
  get sealed(): number {
    return this.nextBatch;
  }

  private add(chunk: Uint8Array, batches: ChunkBatch[]): void {
    this.pending.push(chunk);
    if (this.pending.length >= this.batchSize) this.seal(batches);
  }

  /** The pending chunks become a held batch: hashed here (into `batches`), or by the delegate. */
  private seal(batches: ChunkBatch[]): void {
    const seq = this.nextBatch++;
    const chunks = this.pending;
    this.held.set(seq, chunks);
    this.pending = [];
    if (this.delegate?.(seq, chunks)) return;
    batches.push(hashBatch(seq, chunks));
  }
}

/** A batch's hashes and sizes. */
export function hashBatch(seq: number, chunks: readonly Uint8Array[]): ChunkBatch {
  return { seq, hashes: chunks.map((c) => createHash("sha256").update(c).digest("hex")), sizes: chunks.map((c) => c.byteLength) };
}
