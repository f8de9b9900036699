// Upstream Attic's windowing (`attic/src/chunking/mod.rs`) as a push-based chunker: bytes are
// copied into a window of exactly `maxSize`; a full window is cut with `eof = false`, every chunk
// found is handed out and the unconsumed tail moves to the front; `end()` cuts what is left with
// `eof = true`. The cut points equal those of one pass over the whole input (a cut found in a
// non-final window never depends on bytes past it). Synchronous, so a worker thread can run it
// over pieces as they arrive.
import { deriveCutParams, findCutPoint } from "./fastcdc.ts";
import type { ChunkingParams, CutParams } from "./fastcdc.ts";

/** Receives a chunk as a view into the window: valid only until `emit` returns. */
export type ChunkSink = (chunk: Uint8Array) => void;

export class ChunkWindow {
  private readonly cut: CutParams;
  private readonly window: Uint8Array;
  private filled = 0;

  constructor(params: ChunkingParams) {
    this.cut = deriveCutParams(params);
    this.window = new Uint8Array(this.cut.maxSize);
  }

  push(piece: Uint8Array, emit: ChunkSink): void {
    const max = this.cut.maxSize;
    let at = 0;
    while (at < piece.length) {
      const n = Math.min(piece.length - at, max - this.filled);
      this.window.set(piece.subarray(at, at + n), this.filled);
      this.filled += n;
      at += n;
      if (this.filled === max) this.cutWindow(false, emit);
    }
  }

  /** The input ended: what is left becomes the last chunks (the last one however short). */
  end(emit: ChunkSink): void {
    if (this.filled > 0) this.cutWindow(true, emit);
  }

  private cutWindow(eof: boolean, emit: ChunkSink): void {
    let offset = 0;
    while (offset < this.filled) {
      const n = findCutPoint(this.window, offset, this.filled, this.cut, eof);
      if (n === 0) break;
      emit(this.window.subarray(offset, offset + n));
      offset += n;
    }
    this.window.copyWithin(0, offset, this.filled);
    this.filled -= offset;
  }
}
