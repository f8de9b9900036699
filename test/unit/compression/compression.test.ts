// Round trips of every codec, as one-shot buffers and as streams, checked against the reference
// CLIs (zstd, xz, brotli: decoders that share no code with node:zlib or lzma-native), and the
// property the server relies on: chunks compressed one by one and concatenated decode (with the
// CLIs, which read every frame) to the concatenated input for zstd and xz.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Readable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { randomBytes } from "node:crypto";
import {
  COMPRESSION_TYPES,
  LEVEL_RANGE,
  compressBuffer,
  createCompressor,
  createDecompressor,
  decompressBuffer,
  narinfoCompressionName,
  parseNarinfoCompression,
  UnknownCompressionError,
} from "../../../src/compression/index.ts";
import { decompressWithCli } from "../../helpers/decompress.ts";

const sample = Buffer.concat([randomBytes(100_000), Buffer.alloc(200_000, 7), Buffer.from("text ".repeat(20_000))]);

async function throughStream(data: Buffer, transform: Transform): Promise<Buffer> {
  const parts: Buffer[] = [];
  const pieces = [];
  for (let i = 0; i < data.length; i += 33_333) pieces.push(data.subarray(i, i + 33_333));
  await pipeline(Readable.from(pieces), transform, async (input: AsyncIterable<Buffer | string>) => {
    for await (const p of input) parts.push(Buffer.from(p));
  });
  return Buffer.concat(parts);
}

for (const type of COMPRESSION_TYPES) {
  const name = narinfoCompressionName(type);
  const level = LEVEL_RANGE[type].default;

  test(`${type}: buffer and stream round trips; compresses repetitive data`, async () => {
    const input = Buffer.from(sample);
    const packed = await compressBuffer(type, level, input);
    if (type === "zstd" || type === "brotli") assert.equal(input.length, 0, "the input's memory moved to the worker, not copied");
    if (type !== "none") assert.ok(packed.length < sample.length * 0.6, `${type} compressed ${sample.length} to ${packed.length}`);
    assert.ok((await decompressBuffer(name, packed)).equals(sample));
    assert.ok((await decompressWithCli(name, packed)).equals(sample), "the reference decoder agrees (one-shot)");
    const streamed = await throughStream(sample, createCompressor(type, level));
    assert.ok((await throughStream(streamed, createDecompressor(name))).equals(sample));
    assert.ok((await decompressWithCli(name, streamed)).equals(sample), "the reference decoder agrees (stream)");
    assert.equal((await decompressBuffer(name, await compressBuffer(type, level, Buffer.alloc(0)))).length, 0, "empty input");
  });

  if (type === "none") {
    test("none: bytes pass through unchanged, whatever the level", async () => {
      for (const anyLevel of [0, 9, 1.5]) {
        assert.ok((await compressBuffer("none", anyLevel, Buffer.from(sample))).equals(sample), `level ${anyLevel}`);
        assert.ok((await throughStream(sample, createCompressor("none", anyLevel))).equals(sample), `level ${anyLevel}`);
      }
      assert.ok((await decompressBuffer("none", sample)).equals(sample));
      assert.ok((await throughStream(sample, createDecompressor("none"))).equals(sample));
    });
  } else {
    test(`${type}: out-of-range levels are refused`, () => {
      assert.throws(() => createCompressor(type, LEVEL_RANGE[type].max + 1), RangeError);
      assert.throws(() => createCompressor(type, 1.5), RangeError);
    });
  }
}

for (const type of ["zstd", "xz", "none"] as const) {
  test(`${type}: independently compressed chunks concatenate into one valid stream`, async () => {
    const chunks = [sample.subarray(0, 70_000), sample.subarray(70_000, 250_001), sample.subarray(250_001)];
    const packed = await Promise.all(chunks.map((c) => compressBuffer(type, LEVEL_RANGE[type].default, Buffer.from(c))));
    const decoded = await decompressWithCli(narinfoCompressionName(type), Buffer.concat(packed));
    assert.ok(decoded.equals(sample));
  });
}

test("brotli chunks do not concatenate (why multi-chunk brotli NARs are served decompressed)", async () => {
  const a = await compressBuffer("brotli", 4, Buffer.from("first part "));
  const b = await compressBuffer("brotli", 4, Buffer.from("second part"));
  const joined = await decompressBuffer("br", Buffer.concat([a, b])).catch(() => null);
  assert.notEqual(joined?.toString(), "first part second part");
});

test("narinfo names: brotli is br; unknown names are refused", () => {
  assert.equal(narinfoCompressionName("brotli"), "br");
  assert.equal(narinfoCompressionName("zstd"), "zstd");
  for (const n of ["none", "br", "zstd", "xz"]) assert.equal(parseNarinfoCompression(n), n);
  assert.throws(() => parseNarinfoCompression("bzip2"), UnknownCompressionError);
  assert.throws(() => parseNarinfoCompression("brotli"), UnknownCompressionError);
});
