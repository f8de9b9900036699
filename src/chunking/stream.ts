// Splits a byte stream into content-defined chunks with upstream Attic's windowing (window.ts).
// Memory stays at about `maxSize` plus the source's current piece plus the chunks it held.
import { ChunkWindow } from "./window.ts";
import type { ChunkingParams } from "./fastcdc.ts";

export async function* chunkStream(
  source: AsyncIterable<Uint8Array>,
  params: ChunkingParams,
): AsyncGenerator<Buffer, void, undefined> {
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
