// chunkStream against upstream Attic's windowing as re-stated around the reference cut() (oracle.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { chunkStream, cutLengths } from "../../helpers/chunking-reference.ts";
import type { ChunkingParams } from "../../../src/chunking/fastcdc.ts";
import { oracleAtticWindows, oracleLengths, seededBytes } from "./oracle.ts";
import { PARAM_SETS, realNar, seededSizes, zeroRunInput } from "./inputs.ts";

async function* pieces(data: Uint8Array, sizes: (i: number) => number): AsyncGenerator<Uint8Array> {
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const n = Math.max(1, sizes(i));
    yield data.subarray(offset, offset + n);
    offset += n;
  }
}

async function collect(data: Uint8Array, p: ChunkingParams, sizes: (i: number) => number = () => 65536): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of chunkStream(pieces(data, sizes), p)) out.push(chunk);
  return out;
}

for (const p of PARAM_SETS) {
  const label = `${p.minSize}/${p.avgSize}/${p.maxSize}`;
  test(`windowed stream, ${label}: Attic's windowing of the reference, chunks reassemble the input`, async () => {
    const inputs = [...seededSizes(p).map((n) => seededBytes(n, n + 2)), realNar(), zeroRunInput()];
    for (const data of inputs) {
      const chunks = await collect(data, p);
      const lengths = chunks.map((c) => c.length);
      const windowed = oracleAtticWindows(data, p);
      assert.deepEqual(lengths, windowed.map((c) => c.length), `input of ${data.length} bytes`);
      assert.ok(Buffer.concat(chunks).equals(data));
      lengths.slice(0, -1).forEach((n) => assert.ok(n >= p.minSize && n <= p.maxSize));
      if (data.length > 3 * p.maxSize) assert.ok(windowed.at(-1)!.window > 2, "several windows were exercised");
    }
  });
}

test("the windowing never moves a cut: the same chunks as one pass over the whole input", async () => {
  // Follows from the algorithm (a cut found in a non-final window never looks past it); checked
  // here on the reference itself so that a future change of either side shows up.
  for (const p of PARAM_SETS) {
    for (const data of [seededBytes(3 * 1024 * 1024 + 5, 9), zeroRunInput()]) {
      const whole = await oracleLengths(data, p);
      assert.deepEqual(oracleAtticWindows(data, p).map((c) => c.length), whole);
      assert.deepEqual(cutLengths(data, p), whole);
    }
  }
});

test("how the source is split into pieces does not matter (1-byte, odd and window-sized pieces)", async () => {
  const p = PARAM_SETS[2]!;
  const data = Buffer.concat([seededBytes(150_000, 21), Buffer.alloc(40_000), seededBytes(30_000, 22)]);
  const expected = await oracleLengths(data, p);
  const splits: [string, (i: number) => number][] = [
    ["1 byte", () => 1],
    ["7 bytes", () => 7],
    ["growing", (i) => (i * 131) % 70_001],
    ["exactly max", () => p.maxSize],
    ["max + 1", () => p.maxSize + 1],
    ["everything at once", () => data.length],
  ];
  for (const [name, sizes] of splits) {
    const chunks = await collect(data, p, sizes);
    assert.deepEqual(chunks.map((c) => c.length), expected, name);
    assert.ok(Buffer.concat(chunks).equals(data), name);
  }
});

test("yielded chunks are independent copies, not views of the reused window", async () => {
  // Collected first and compared afterwards: views into the window would have been overwritten.
  const p = PARAM_SETS[2]!;
  const data = seededBytes(500_000, 31);
  const chunks = await collect(data, p);
  assert.ok(chunks.length > 10 && data.length > 10 * p.maxSize);
  assert.ok(Buffer.concat(chunks).equals(data));
});

test("pull-based: reads at most one window plus one source piece ahead of what was consumed", async () => {
  const p = PARAM_SETS[0]!;
  const data = seededBytes(4 * 1024 * 1024, 41);
  const pieceSize = 100_000;
  let pulled = 0;
  async function* counting(): AsyncGenerator<Uint8Array> {
    for await (const piece of pieces(data, () => pieceSize)) {
      pulled += piece.length;
      yield piece;
    }
  }
  let consumed = 0;
  let maxAhead = 0;
  for await (const chunk of chunkStream(counting(), p)) {
    consumed += chunk.length;
    maxAhead = Math.max(maxAhead, pulled - consumed);
  }
  assert.equal(consumed, data.length);
  assert.ok(maxAhead <= p.maxSize + pieceSize, `${maxAhead} bytes read ahead`);
});

test("stopping early closes the source; a failing source fails the stream", async () => {
  const p = PARAM_SETS[2]!;
  let closed = false;
  async function* endless(): AsyncGenerator<Uint8Array> {
    try {
      for (let i = 0; ; i++) yield seededBytes(10_000, i + 1);
    } finally {
      closed = true;
    }
  }
  let n = 0;
  for await (const _chunk of chunkStream(endless(), p)) if (++n === 5) break;
  assert.equal(closed, true);

  async function* failing(): AsyncGenerator<Uint8Array> {
    yield seededBytes(100_000, 1);
    throw new Error("source broke");
  }
  await assert.rejects(async () => {
    for await (const _chunk of chunkStream(failing(), p)) {
      // drain
    }
  }, /source broke/);
});

test("an empty source yields nothing; invalid parameters are refused before reading", async () => {
  assert.deepEqual(await collect(new Uint8Array(0), PARAM_SETS[0]!), []);
  let read = false;
  async function* source(): AsyncGenerator<Uint8Array> {
    read = true;
    yield new Uint8Array(10);
  }
  await assert.rejects(chunkStream(source(), { minSize: 10, avgSize: 256, maxSize: 1024 }).next(), RangeError);
  assert.equal(read, false);
});
