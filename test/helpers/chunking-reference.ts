// Reference forms of chunking for tests: the NAR pass (held chunks) and upstream's crate are checked
// against these, which cut whole buffers or plain async streams with the production cut function.
import { deriveCutParams, findCutPoint, type ChunkingParams } from "../../src/chunking/fastcdc.ts";
import { ChunkWindow } from "../../src/chunking/window.ts";

/**
 * Chunk lengths of `buf[0, buf.length)` in order, like the crate's `FastCDC::with_eof` iterator:
 * with `eof` false, the bytes after the last returned chunk are left for the next buffer.
 */
export function cutLengths(buf: Uint8Array, params: ChunkingParams, eof = true): number[] {
  const cut = deriveCutParams(params);
  const lengths: number[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const n = findCutPoint(buf, offset, buf.length, cut, eof);
    if (n === 0) break;
    lengths.push(n);
    offset += n;
  }
  return lengths;
}

/** Splits a byte stream into content-defined chunks with upstream Attic's windowing (window.ts). */
export async function* chunkStream(source: AsyncIterable<Uint8Array>, params: ChunkingParams): AsyncGenerator<Buffer, void, undefined> {
  const window = new ChunkWindow(params);
  let found: Buffer[] = [];
  // a copy, because the window is overwritten by the next piece
  const keep = (chunk: Uint8Array) => found.push(Buffer.from(chunk));
  for await (const piece of source) {
    window.push(piece, keep);
    const out = found;
    found = [];
    yield* out;
  }
  window.end(keep);
  yield* found;
}
