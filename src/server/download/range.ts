// Range requests on NAR downloads (ours, issue 17): one `bytes=` range of the body as served
// (the concatenated chunk files, or the decompressed NAR when chunks are decompressed on the way
// out). Only the chunks overlapping the range are read; the first and last are cut to it.
import { Transform, type TransformCallback } from "node:stream";
import type { ServedChunk } from "../../db/queries/objects.ts";

export interface ByteRange {
  start: number;
  /** inclusive */
  end: number;
}

/**
 * The range asked for by a `Range` header on a body of `total` bytes: null to answer with the
 * whole body (no header, several ranges, a unit other than bytes, a malformed header: RFC 9110
 * lets a server ignore those), "unsatisfiable" for a range starting past the end.
 */
export function parseRange(header: string | undefined, total: number): ByteRange | "unsatisfiable" | null {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    // the last N bytes
    const n = Number(m[2]);
    if (n === 0) return "unsatisfiable";
    return { start: Math.max(0, total - n), end: total - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? Number.MAX_SAFE_INTEGER : Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return null;
  if (start >= total) return "unsatisfiable";
  return { start, end: Math.min(end, total - 1) };
}

/** Where the first chunk given out starts relative to the range (set before its first byte flows). */
export interface RangeCut {
  skip: number;
}

/** The chunks overlapping `range`, given `size` (the bytes each contributes to the body). */
export async function* chunksInRange(
  chunks: AsyncGenerator<ServedChunk>,
  size: (c: ServedChunk) => number,
  range: ByteRange,
  cut: RangeCut,
): AsyncGenerator<ServedChunk> {
  let offset = 0;
  let first = true;
  try {
    for await (const chunk of chunks) {
      const n = size(chunk);
      if (offset + n > range.start) {
        if (first) {
          cut.skip = range.start - offset;
          first = false;
        }
        yield chunk;
      }
      offset += n;
      if (offset > range.end) return;
    }
  } finally {
    await chunks.return(undefined);
  }
}

/** Drops `cut.skip` bytes, passes `length`, drops the rest. */
export class RangeSlice extends Transform {
  private readonly cut: RangeCut;
  private left: number;
  private skipped = 0;

  constructor(cut: RangeCut, length: number) {
    super();
    this.cut = cut;
    this.left = length;
  }

  override _transform(piece: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let from = 0;
    if (this.skipped < this.cut.skip) {
      from = Math.min(piece.length, this.cut.skip - this.skipped);
      this.skipped += from;
    }
    const take = Math.min(piece.length - from, this.left);
    this.left -= take;
    cb(null, take > 0 ? piece.subarray(from, from + take) : undefined);
  }
}
