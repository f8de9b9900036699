// The worker's reused zstd context: the same frames as a fresh context per chunk (zstdCompressSync
// with the size pledged), each one independent; a whole stream decodes to its input.
import assert from "node:assert/strict";
import { test } from "node:test";
import zlib from "node:zlib";
import { frameCompressor, syncStream } from "../../../src/workers/frames.ts";
import { seededBytes } from "../../helpers/nar.ts";

test("frames from the reused zstd context equal fresh-context frames, chunk after chunk", () => {
  const c = frameCompressor("zstd", 3);
  const text = Buffer.from("abcdefgh".repeat(40_000));
  for (const data of [seededBytes(70_000, 1), text, Buffer.alloc(0), Buffer.from("x"), seededBytes(300_000, 2), text.subarray(0, 65_536)]) {
    const frame = c.compress(data);
    const fresh = zlib.zstdCompressSync(data, { pledgedSrcSize: data.length, params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } });
    assert.ok(Buffer.from(frame).equals(fresh), `${data.length} bytes`);
    assert.equal(frame.byteOffset, 0);
    assert.equal(frame.byteLength, frame.buffer.byteLength, "the frame owns its memory (it moves)");
  }
});

test("a whole stream through the sync stream decodes to its input", () => {
  for (const type of ["zstd", "brotli"] as const) {
    const s = syncStream(type, 3, 64 * 1024);
    const input = seededBytes(2_000_000, 3);
    const out: Uint8Array[] = [];
    for (let at = 0; at < input.length; at += 300_000) out.push(...s.write(input.subarray(at, at + 300_000), false));
    out.push(...s.write(new Uint8Array(0), true));
    const stored = Buffer.concat(out);
    const decoded = type === "zstd" ? zlib.zstdDecompressSync(stored) : zlib.brotliDecompressSync(stored);
    assert.ok(decoded.equals(input), type);
  }
});
