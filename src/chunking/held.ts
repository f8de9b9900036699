// The same cut points as ChunkWindow (window.ts), but each chunk stays valid after it is handed
// out, without copying most bytes: a chunk that lies inside one piece is a view into that piece
// (pieces must not be reused by the caller: they are owned, e.g. moved in from another thread),
// and only the bytes around a piece boundary are copied, into a fresh buffer the chunks there
// view. A piece that continues its predecessor in the same memory (pieces written back to back
// into a shared ring: workers/ring.ts) is not a boundary at all: the carry and the piece are one
// view, nothing is copied. Cut decisions depend only on the bytes from a chunk's start to its cut
// (at most maxSize), so cutting wherever the bytes happen to lie gives one pass's cut points.
import { deriveCutParams, findCutPoint } from "./fastcdc.ts";
import type { ChunkingParams, CutParams } from "./fastcdc.ts";
import type { WasmCut } from "./gear-wasm.ts";

/** The WebAssembly cut loop (gear-wasm.ts) over the memory whose buffer is `buffer`: used for bytes in it. */
export interface MemoryCutter {
  buffer: ArrayBufferLike;
  cut: WasmCut;
}

/** Receives a chunk: a view the chunker never writes to again (keep it as long as needed). */
export type HeldChunkSink = (chunk: Uint8Array) => void;

export class HeldChunker {
  private readonly cut: CutParams;
  /** bytes not yet cut (fewer than maxSize), a view into a piece or a joined buffer */
  private carry: Uint8Array = new Uint8Array(0);
  /** bytes copied into joined buffers (boundaries): the cost this design keeps low */
  copied = 0;

  private readonly fast: MemoryCutter | null;

  constructor(params: ChunkingParams, fast: MemoryCutter | null = null) {
    this.cut = deriveCutParams(params);
    this.fast = fast;
  }

  push(piece: Uint8Array, emit: HeldChunkSink): void {
    const carry = this.carry;
    if (carry.length > 0 && carry.buffer === piece.buffer && carry.byteOffset + carry.length === piece.byteOffset) {
      // the piece continues the carry in memory: cut across both without a copy
      const both = new Uint8Array(piece.buffer, carry.byteOffset, carry.length + piece.length);
      this.carry = both.subarray(this.cutFrom(both, 0, false, emit));
      return;
    }
    const max = this.cut.maxSize;
    let pos = 0;
    while (pos < piece.length) {
      if (this.carry.length === 0) {
        pos = this.cutFrom(piece, pos, false, emit);
        this.carry = piece.subarray(pos);
        return;
      }
      // the carry and just enough of the piece to decide at least one cut
      const carried = this.carry.length;
      const need = Math.min(piece.length - pos, max - carried);
      const join = new Uint8Array(carried + need);
      join.set(this.carry);
      join.set(piece.subarray(pos, pos + need), carried);
      this.copied += join.length;
      pos += need;
      const at = this.cutFrom(join, 0, false, emit);
      if (at >= carried) {
        // the rest lies in the piece: go on cutting there, without the copy
        pos -= join.length - at;
        this.carry = new Uint8Array(0);
      } else {
        this.carry = join.subarray(at);
      }
    }
  }

  /** Bytes not yet cut (always fewer than maxSize). */
  get carried(): number {
    return this.carry.length;
  }

  /**
   * Copies the bytes not yet cut into `to` (exactly `carried` bytes long) and goes on from there:
   * a ring's writer puts the next piece right after `to`, so the carry and it are contiguous again.
   */
  moveCarry(to: Uint8Array): void {
    if (to.length !== this.carry.length) throw new RangeError(`the carry is ${this.carry.length} bytes, not ${to.length}`);
    to.set(this.carry);
    this.copied += to.length;
    this.carry = to;
  }

  /** The input ended: what is left becomes the last chunks (the last one however short). */
  end(emit: HeldChunkSink): void {
    if (this.carry.length > 0) this.cutFrom(this.carry, 0, true, emit);
    this.carry = new Uint8Array(0);
  }

  /** Emits every chunk decidable in buf[from..]; returns where the undecided rest starts. */
  private cutFrom(buf: Uint8Array, from: number, eof: boolean, emit: HeldChunkSink): number {
    let at = from;
    const fast = this.fast && buf.buffer === this.fast.buffer ? this.fast.cut : null;
    const base = buf.byteOffset;
    while (at < buf.length) {
      const n = fast ? fast(base + at, base + buf.length, this.cut, eof) : findCutPoint(buf, at, buf.length, this.cut, eof);
      if (n === 0) break;
      emit(buf.subarray(at, at + n));
      at += n;
    }
    return at;
  }
}
