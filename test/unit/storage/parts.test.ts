import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { PartBuffers, PartCutter, PartFeed } from "../../../src/storage/s3-parts.ts";

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

test("past the first part, next(false) reads no part ahead (a multipart upload holds one part fewer); a source that ends on a part boundary then gives an empty last part", async () => {
  let pulled = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 3; i++) {
      pulled++;
      yield Buffer.alloc(8, i);
    }
  }
  const cutter = new PartCutter(counted(), 8);
  assert.deepEqual(await cutter.next(), { data: Buffer.alloc(8, 0), last: false });
  assert.equal(pulled, 2, "the first part looks one piece ahead: PutObject or multipart");
  assert.deepEqual(await cutter.next(false), { data: Buffer.alloc(8, 1), last: false });
  assert.equal(pulled, 2, "the second part was already read; nothing more is pulled");
  assert.deepEqual(await cutter.next(false), { data: Buffer.alloc(8, 2), last: false });
  assert.equal(pulled, 3);
  assert.deepEqual(await cutter.next(false), { data: Buffer.alloc(0), last: true });
});

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

test("with part buffers, parts are cut into reused buffers and still reassemble to the input", async () => {
  const buffers = new PartBuffers(8, 2);
  const input = Buffer.from(Array.from({ length: 45 }, (_, i) => i));
  const chunks = [input.subarray(0, 3), input.subarray(3, 20), input.subarray(20, 21), input.subarray(21)];
  const cutter = new PartCutter(fromChunks(chunks), 8, buffers);
  const seen: Buffer[] = [];
  const backing = new Set<ArrayBufferLike>();
  for (;;) {
    const part = await cutter.next();
    seen.push(Buffer.from(part.data));
    backing.add(part.data.buffer);
    buffers.give(part.data);
    if (part.last) break;
  }
  assert.deepEqual(Buffer.concat(seen), input);
  // (a piece that is exactly the part goes as it is, without a copy)
  backing.delete(input.buffer);
  assert.equal(backing.size, 1, "each part's buffer came back and was reused");
});

test("a part feed hands pushed bytes on as whole part buffers, then the shorter last one; a failure rejects the writer", async () => {
  const buffers = new PartBuffers(8, 3);
  const feed = new PartFeed(buffers);
  const input = Buffer.from(Array.from({ length: 21 }, (_, i) => i));
  const parts: Buffer[] = [];
  const reading = (async () => {
    for await (const part of feed) parts.push(Buffer.from(part));
  })();
  const scratch = Buffer.alloc(5);
  for (let at = 0; at < input.length; at += 5) {
    const n = Math.min(5, input.length - at);
    input.copy(scratch, 0, at, at + n);
    await feed.write(scratch.subarray(0, n));
    scratch.fill(0xff);
  }
  feed.end();
  await reading;
  assert.deepEqual(parts.map((p) => p.length), [8, 8, 5]);
  assert.deepEqual(Buffer.concat(parts), input);

  const failing = new PartFeed(buffers);
  failing.fail(new Error("upload failed"));
  await assert.rejects(failing.write(Buffer.alloc(1)), /upload failed/);
});
