import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { PartCutter } from "../../../src/storage/s3-parts.ts";

async function* fromChunks(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const c of chunks) yield c;
}

async function cutAll(chunks: Buffer[], partSize: number): Promise<{ data: Buffer; last: boolean }[]> {
  const cutter = new PartCutter(fromChunks(chunks), partSize);
  const parts = [];
  for (;;) {
    const part = await cutter.next();
    parts.push(part);
    if (part.last) return parts;
    assert.ok(parts.length < 10_000, "cutter never ends");
  }
}

test("an empty source is one empty last part", async () => {
  assert.deepEqual(await cutAll([], 8), [{ data: Buffer.alloc(0), last: true }]);
});

test("a source of exactly one part size is a single last part", async () => {
  const parts = await cutAll([Buffer.alloc(5, 1), Buffer.alloc(3, 2)], 8);
  assert.equal(parts.length, 1);
  assert.equal(parts[0]?.last, true);
  assert.equal(parts[0]?.data.length, 8);
});

test("parts are exactly partSize except the last, and reassemble to the input", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 30 }), fc.integer({ min: 1, max: 25 }), async (arrays, partSize) => {
      const chunks = arrays.map((a) => Buffer.from(a));
      const input = Buffer.concat(chunks);
      const parts = await cutAll(chunks, partSize);
      assert.deepEqual(Buffer.concat(parts.map((p) => p.data)), input);
      parts.forEach((p, i) => {
        const isLast = i === parts.length - 1;
        assert.equal(p.last, isLast);
        if (!isLast) assert.equal(p.data.length, partSize);
        else assert.ok(p.data.length <= partSize && (p.data.length > 0 || input.length === 0 || parts.length === 1));
      });
      // no empty trailing part after full ones
      if (parts.length > 1) assert.ok((parts.at(-1)?.data.length ?? 0) > 0);
    }),
    { numRuns: 300 },
  );
});
