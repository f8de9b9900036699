// Cut points of our FastCDC against the reference JS (@ronomon/deduplication), see oracle.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { deriveCutParams, findCutPoint, validateChunkingParams } from "../../../src/chunking/fastcdc.ts";
import { cutLengths } from "../../helpers/chunking-reference.ts";
import type { ChunkingParams } from "../../../src/chunking/fastcdc.ts";
import { oracleCut, oracleLengths, seededBytes } from "./oracle.ts";
import { PARAM_SETS, realNar, seededSizes, zeroRunInput } from "./inputs.ts";

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

for (const p of PARAM_SETS) {
  const label = `${p.minSize}/${p.avgSize}/${p.maxSize}`;

  test(`seeded random data, ${label}: same cut points as the reference`, async () => {
    for (const size of seededSizes(p)) {
      const data = seededBytes(size, size + 1);
      const ours = cutLengths(data, p);
      assert.deepEqual(ours, await oracleLengths(data, p), `size ${size}`);
      assert.equal(sum(ours), size);
      ours.slice(0, -1).forEach((n) => assert.ok(n >= p.minSize && n <= p.maxSize, `chunk of ${n} bytes`));
      assert.ok((ours.at(-1) ?? 0) <= p.maxSize);
    }
  });

  test(`real executables in a NAR and a zero run, ${label}: same cut points as the reference`, async () => {
    for (const data of [realNar(), zeroRunInput()]) {
      const ours = cutLengths(data, p);
      assert.deepEqual(ours, await oracleLengths(data, p));
      assert.ok(ours.length > 3, "input long enough for several chunks");
    }
  });
}

test("a large input yields many distinct chunk sizes (the test data is not degenerate)", () => {
  const p = PARAM_SETS[0]!;
  const lengths = cutLengths(seededBytes(8 * 1024 * 1024, 5), p);
  assert.ok(lengths.length > 50);
  assert.ok(new Set(lengths).size > lengths.length / 2);
  assert.ok(lengths.some((n) => n < p.avgSize) && lengths.some((n) => n > p.avgSize));
});

test("fastcdc-rs ronomon test_all_zeros: 10240 zero bytes at 64/256/1024 give ten 1024-byte chunks", () => {
  // The crate's other vectors (test_sekien_*) need its SekienAkashita.jpg fixture, which we do not have.
  assert.deepEqual(cutLengths(new Uint8Array(10240), { minSize: 64, avgSize: 256, maxSize: 1024 }), Array(10).fill(1024));
});

test("non-final buffers: each single cut agrees with the reference's cut(), including 'need more' (0)", () => {
  const p = PARAM_SETS[2]!;
  const cut = deriveCutParams(p);
  const data = Buffer.concat([seededBytes(200_000, 3), Buffer.alloc(70_000), seededBytes(50_000, 4)]);
  let checked = 0;
  for (let start = 0; start < data.length; start += 4999) {
    for (const end of [start + p.minSize, start + p.minSize + 1, start + 12_000, start + p.maxSize - 1, start + p.maxSize, start + p.maxSize + 5]) {
      if (end > data.length) continue;
      for (const eof of [false, true]) {
        assert.equal(findCutPoint(data, start, end, cut, eof), oracleCut(data, start, end, p, eof), `${start}..${end} eof=${eof}`);
        checked++;
      }
    }
  }
  assert.ok(checked > 500);
});

test("property: any bytes and any reference-accepted parameters give the reference's cut points", async () => {
  // The reference additionally insists on min < avg < max and max - min >= avg.
  const params = fc
    .record({ minSize: fc.integer({ min: 64, max: 2048 }), extraAvg: fc.integer({ min: 1, max: 4096 }), extraMax: fc.integer({ min: 0, max: 4096 }) })
    .map(({ minSize, extraAvg, extraMax }): ChunkingParams => {
      const avgSize = Math.max(256, minSize + extraAvg);
      return { minSize, avgSize, maxSize: Math.max(1024, avgSize + minSize + extraMax) };
    });
  const data = fc.oneof(
    fc.uint8Array({ maxLength: 40_000 }),
    fc.tuple(fc.integer({ min: 0, max: 60_000 }), fc.integer()).map(([n, seed]) => seededBytes(n, seed)),
  );
  await fc.assert(
    fc.asyncProperty(params, data, async (p, bytes) => {
      assert.deepEqual(cutLengths(bytes, p), await oracleLengths(bytes, p));
    }),
    { numRuns: 150 },
  );
});

test("validateChunkingParams accepts upstream's range and names every problem", () => {
  validateChunkingParams({ minSize: 64, avgSize: 256, maxSize: 1024 });
  validateChunkingParams({ minSize: 64 * 1024 * 1024, avgSize: 256 * 1024 * 1024, maxSize: 1024 * 1024 * 1024 });
  validateChunkingParams({ minSize: 1024, avgSize: 1024, maxSize: 1024 });
  const bad: [ChunkingParams, RegExp][] = [
    [{ minSize: 63, avgSize: 256, maxSize: 1024 }, /minSize must be within 64\.\./],
    [{ minSize: 64, avgSize: 255, maxSize: 1024 }, /avgSize must be within/],
    [{ minSize: 64, avgSize: 256, maxSize: 1023 }, /maxSize must be within/],
    [{ minSize: 64, avgSize: 256, maxSize: 1024 * 1024 * 1024 + 1 }, /maxSize must be within/],
    [{ minSize: 64 * 1024 * 1024 + 1, avgSize: 256 * 1024 * 1024, maxSize: 1024 * 1024 * 1024 }, /minSize must be within/],
    [{ minSize: 4096, avgSize: 2048, maxSize: 8192 }, /minSize \(4096\) must not exceed avgSize/],
    [{ minSize: 64, avgSize: 4096, maxSize: 2048 }, /avgSize \(4096\) must not exceed maxSize/],
    [{ minSize: 64.5, avgSize: 256, maxSize: 1024 }, /minSize must be an integer/],
    [{ minSize: Number.NaN, avgSize: 256, maxSize: 1024 }, /minSize must be an integer/],
  ];
  for (const [p, message] of bad) assert.throws(() => validateChunkingParams(p), message);
  assert.throws(
    () => validateChunkingParams({ minSize: 1, avgSize: 2, maxSize: 3 }),
    (e: Error) => e instanceof RangeError && /minSize.*avgSize.*maxSize/.test(e.message),
  );
  assert.throws(() => cutLengths(new Uint8Array(10), { minSize: 1, avgSize: 256, maxSize: 1024 }), RangeError);
});

test("masks round log2 of avgSize (fastcdc 4.0.1), so a non-power-of-two average picks the nearer bucket", () => {
  assert.deepEqual(deriveCutParams({ minSize: 64, avgSize: 12288, maxSize: 65536 }), {
    minSize: 64, maxSize: 65536, center: 12288 - 96, maskS: 2 ** 15 - 1, maskL: 2 ** 13 - 1,
  });
  assert.equal(deriveCutParams({ minSize: 64, avgSize: 1100, maxSize: 4096 }).maskS, 2 ** 11 - 1);
  // center = avg - min(avg, min + ceil(min / 2))
  assert.equal(deriveCutParams({ minSize: 16384, avgSize: 65536, maxSize: 262144 }).center, 65536 - 24576);
  assert.equal(deriveCutParams({ minSize: 777, avgSize: 1024, maxSize: 4096 }).center, 0);
});
