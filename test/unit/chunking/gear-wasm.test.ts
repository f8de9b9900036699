// The WebAssembly cut loop (gear-wasm.ts): findCutPoint's answer for every start, end and `eof`,
// on the inputs and parameter sets every chunking test uses, and the held chunker using it
// cuts exactly where Attic's windowing does.
import assert from "node:assert/strict";
import { test } from "node:test";
import { deriveCutParams, findCutPoint } from "../../../src/chunking/fastcdc.ts";
import { cuttingMemory, RESERVED, wasmCutter } from "../../../src/chunking/gear-wasm.ts";
import { HeldChunker } from "../../../src/chunking/held.ts";
import { PARAM_SETS, realNar, seededSizes, zeroRunInput } from "./inputs.ts";
import { oracleAtticWindows, seededBytes } from "./oracle.ts";

function inMemory(data: Uint8Array) {
  const memory = cuttingMemory(data.length)!;
  assert.ok(memory, "Node 24 has shared WebAssembly memories");
  const cut = wasmCutter(memory)!;
  assert.ok(cut);
  const view = new Uint8Array(memory.buffer, RESERVED, data.length);
  view.set(data);
  return { memory, cut, view };
}

for (const p of PARAM_SETS) {
  test(`WebAssembly cut points equal findCutPoint's, ${p.minSize}/${p.avgSize}/${p.maxSize}`, () => {
    const cutParams = deriveCutParams(p);
    for (const data of [realNar(), zeroRunInput(), seededBytes(3 << 20, 9), ...seededSizes(p).map((n) => seededBytes(n, n + 5))]) {
      const { cut } = inMemory(data);
      for (const eof of [true, false]) {
        // every chunk start of a whole pass, and windows ending early (not enough data: 0)
        let at = 0;
        while (at < data.length) {
          const js = findCutPoint(data, at, data.length, cutParams, eof);
          assert.equal(cut(RESERVED + at, RESERVED + data.length, cutParams, eof), js, `eof ${eof} at ${at} of ${data.length}`);
          const short = Math.min(data.length, at + p.minSize + ((at * 31) % p.maxSize));
          assert.equal(cut(RESERVED + at, RESERVED + short, cutParams, eof), findCutPoint(data, at, short, cutParams, eof), `window ${at}..${short}`);
          if (js === 0) break;
          at += js;
        }
      }
    }
  });
}

test("the held chunker cuts in a WebAssembly memory exactly where Attic's windowing does", () => {
  const p = PARAM_SETS[0]!;
  const data = realNar();
  const { memory, cut, view } = inMemory(data);
  const chunker = new HeldChunker(p, { buffer: memory.buffer, cut });
  const chunks: Uint8Array[] = [];
  // pieces back to back in the memory: no copies at their edges either
  for (let at = 0; at < view.length; at += 100_000) chunker.push(view.subarray(at, at + 100_000), (c) => chunks.push(c));
  chunker.end((c) => chunks.push(c));
  assert.deepEqual(chunks.map((c) => c.length), oracleAtticWindows(data, p).map((c) => c.length));
  assert.equal(chunker.copied, 0);
  assert.ok(chunks.every((c) => c.buffer === memory.buffer));
});
