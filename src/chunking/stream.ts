// Splits a byte stream into content-defined chunks with upstream Attic's windowing
// (`attic/src/chunking/mod.rs`): fill a window of exactly `maxSize` bytes, cut it with
// `eof = window not full`, emit every chunk found and carry the unconsumed tail to the front of the
// next window. The cut points equal those of one pass over the whole input (a cut found in a
// non-final window never depends on bytes past it); the window only bounds memory to about
// `maxSize` plus the source's current piece plus the chunk being handed out.
import { deriveCutParams, findCutPoint } from "./fastcdc.ts";
import type { ChunkingParams } from "./fastcdc.ts";

export async function* chunkStream(
  source: AsyncIterable<Uint8Array>,
  params: ChunkingParams,
): AsyncGenerator<Buffer, void, undefined> {
  const cut = deriveCutParams(params);
  const max = cut.maxSize;
  const window = Buffer.allocUnsafe(max);
  const pieces = source[Symbol.asyncIterator]();
  let exhausted = false;
  // Part of the last source piece that did not fit in the window.
  let pending: Uint8Array = new Uint8Array(0);
  let filled = 0;
  try {
    while (true) {
      while (filled < max && !exhausted) {
        if (pending.length === 0) {
          const next = await pieces.next();
          if (next.done) {
            exhausted = true;
            break;
          }
          pending = next.value;
          continue;
        }
        const n = Math.min(pending.length, max - filled);
        window.set(pending.subarray(0, n), filled);
        filled += n;
        pending = pending.subarray(n);
      }
      if (filled === 0) return;
      const eof = filled < max;
      let offset = 0;
      while (offset < filled) {
        const n = findCutPoint(window, offset, filled, cut, eof);
        if (n === 0) break;
        // A copy, because the window is overwritten once the consumer asks for more.
        yield Buffer.from(window.subarray(offset, offset + n));
        offset += n;
      }
      if (eof) return;
      window.copyWithin(0, offset, filled);
      filled -= offset;
    }
  } finally {
    if (!exhausted) await pieces.return?.();
  }
}
