// The shared ring of a chunked NAR pass: one shared memory per pass that the main thread
// writes the body into and both workers of the pass read from (the cutting worker parses, hashes
// and cuts it in place; its partner compresses or hashes chunks as views of it). No byte of the
// NAR is allocated, moved or collected per piece: the ring is the pass's whole working memory.
//
// The main thread alone decides where bytes go and when space is free again, from what it sees:
// pieces are written back to back, so a chunk spanning two pieces is one view; a piece that does
// not fit before the ring's end starts a new lap after a gap of `gap` bytes (the chunker's maximum
// chunk size), and the cutting worker copies its uncut carry (always shorter than that) into the
// end of the gap, right before the piece, so every chunk is still one contiguous view. Space is
// reclaimed up to the first byte of the oldest batch the main thread has not released (chunks
// cut, hashed or compressed are read only before their batch reaches the main thread, or while
// it asks for their frames).
//
// Positions are virtual (monotonic: a lap adds `size`); physical offset = virtual - lap start.
// Where WebAssembly has shared memories (Node 24 does), the ring is one, its bytes after the first
// page (chunking/gear-wasm.ts: the gear table lives there), and the worker cuts with the
// WebAssembly loop in place; physical offsets count from `base`.
import { cuttingMemory, RESERVED } from "../chunking/gear-wasm.ts";

/** A pass's ring: its bytes are `buffer[base, base + size)`; `memory` is the WebAssembly memory that buffer belongs to, if any. */
export interface Ring {
  buffer: SharedArrayBuffer;
  base: number;
  size: number;
  memory: WebAssembly.Memory | null;
}

/** The shared bytes of a ring as posted to a worker (a WebAssembly memory's buffer, or the buffer itself). */
export function ringBuffer(shared: WebAssembly.Memory | SharedArrayBuffer): SharedArrayBuffer {
  return shared instanceof WebAssembly.Memory ? (shared.buffer as unknown as SharedArrayBuffer) : shared;
}

export function newRing(size: number): Ring {
  const memory = cuttingMemory(size);
  if (memory) return { buffer: ringBuffer(memory), base: RESERVED, size, memory };
  return { buffer: new SharedArrayBuffer(size), base: 0, size, memory: null };
}

export interface RingPlace {
  /** physical offset of the piece in the ring */
  at: number;
  /** the piece starts a new lap: the cutting worker moves its carry to just before `at` */
  wrapped: boolean;
}

export class RingLayout {
  readonly size: number;
  readonly gap: number;
  /** virtual start of the current lap, and the next byte to write */
  private lapStart = 0;
  private writeAt = 0;
  /** virtual position before which everything is free */
  private freeTo = 0;
  /** NAR bytes written */
  private narWritten = 0;
  /** where each piece went: NAR offset of its first byte and its virtual position, in order */
  private readonly pieces: { nar: number; at: number }[] = [];
  /** the piece being filled (placed, not yet committed) */
  private open: { nar: number; at: number; room: number; wrapped: boolean } | null = null;

  constructor(size: number, gap: number) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`ring size ${size}`);
    this.size = size;
    this.gap = gap;
  }

  /**
   * Room for a piece of up to `room` bytes at the write position, or after the gap of a new lap;
   * null while too little space is free (release batches, then try again).
   */
  place(room: number): RingPlace | null {
    if (this.open) throw new Error("a piece is already open");
    if (room <= 0 || room > this.size) throw new RangeError(`piece of ${room} bytes in a ring of ${this.size}`);
    let at = this.writeAt;
    let wrapped = false;
    if (at - this.lapStart + room > this.size) {
      if (room > this.size - this.gap) throw new RangeError(`piece of ${room} bytes after a gap of ${this.gap} in a ring of ${this.size}`);
      at = this.lapStart + this.size + this.gap;
      wrapped = true;
    }
    if (at + room - this.freeTo > this.size) return null;
    if (wrapped) {
      this.lapStart += this.size;
      this.writeAt = at;
    }
    this.open = { nar: this.narWritten, at, room, wrapped };
    return { at: at - this.lapStart, wrapped };
  }

  /** The open piece was filled with `length` bytes (≤ its room), which now go to the worker. */
  commit(length: number): void {
    const open = this.open;
    if (!open) throw new Error("no piece is open");
    if (length > open.room) throw new RangeError(`${length} bytes in a piece of ${open.room}`);
    this.open = null;
    if (length === 0) return;
    this.pieces.push({ nar: open.nar, at: open.at });
    this.narWritten += length;
    this.writeAt = open.at + length;
  }

  /** Every NAR byte before `narOffset` may be overwritten (the batches holding them are released). */
  reclaim(narOffset: number): void {
    // the last piece starting at or before narOffset holds it
    let i = 0;
    while (i + 1 < this.pieces.length && this.pieces[i + 1]!.nar <= narOffset) i++;
    const piece = this.pieces[i];
    if (!piece || piece.nar > narOffset) return;
    const at = piece.at + (narOffset - piece.nar);
    if (at > this.freeTo) this.freeTo = at;
    if (i > 0) this.pieces.splice(0, i);
  }

  /** Bytes between the oldest unreclaimed byte and the write position (gaps included). */
  get used(): number {
    return this.writeAt - this.freeTo;
  }
}

/** A chunked pass's ring: the NAR itself when it fits (it is never reclaimed then), else a fixed size. */
export function ringSize(narSize: number, maxChunk: number, batchSize: number, piece: number, piecesInFlight: number): number {
  // enough for the worker's carry, its unsealed batch, the pieces in flight and the gap, so the
  // ring never fills with bytes no release can free; and at least some 16 MiB for batches in flight
  const least = (batchSize + 2) * maxChunk + piecesInFlight * piece + maxChunk;
  const full = Math.max(RING_BYTES, least);
  return narSize > 0 && narSize <= full ? narSize : full;
}

const RING_BYTES = 16 * 1024 * 1024;
