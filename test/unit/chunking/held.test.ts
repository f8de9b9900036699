// HeldChunker: the cut points of Attic's windowing (oracle.ts) whatever the piece sizes, and
// chunks that stay intact after later pieces (they are views, never overwritten).
import { test } from "node:test";
import assert from "node:assert/strict";
import { HeldChunker } from "../../../src/chunking/held.ts";
import { oracleAtticWindows, seededBytes } from "./oracle.ts";
import { PARAM_SETS, realNar, seededSizes, zeroRunInput } from "./inputs.ts";

function held(data: Uint8Array, params: (typeof PARAM_SETS)[number], size: (i: number) => number): { chunks: Uint8Array[]; copied: number } {
  const chunker = new HeldChunker(params);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const n = Math.max(1, size(i));
    // each piece its own memory, as when moved in from another thread
    chunker.push(Uint8Array.from(data.subarray(offset, offset + n)), (c) => chunks.push(c));
    offset += n;
  }
  chunker.end((c) => chunks.push(c));
  return { chunks, copied: chunker.copied };
}

for (const p of PARAM_SETS) {
  test(`held chunks, ${p.minSize}/${p.avgSize}/${p.maxSize}: Attic's cut points for any piece sizes, chunks intact`, () => {
    const inputs = [...seededSizes(p).map((n) => seededBytes(n, n + 2)), realNar(), zeroRunInput()];
    const sizes: ((i: number) => number)[] = [() => 65536, () => 256 * 1024, () => 1 << 20, (i) => ((i * 7919) % 100_000) + 1, (i) => (i % 5) * 1000 + 1];
    for (const data of inputs) {
      const expected = oracleAtticWindows(data, p).map((c) => c.length);
      for (const size of sizes) {
        const { chunks } = held(data, p, size);
        assert.deepEqual(chunks.map((c) => c.length), expected, `input of ${data.length} bytes`);
        assert.ok(Buffer.concat(chunks).equals(data), "the chunks, kept to the end, still hold the input");
      }
    }
  });
}

test("held chunks copy only around piece boundaries", () => {
  const p = PARAM_SETS[0]!;
  const data = seededBytes(16 << 20, 5);
  const { copied } = held(data, p, () => 1 << 20);
  assert.ok(copied < data.length / 2, `copied ${copied} of ${data.length}`);
});
