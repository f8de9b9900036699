// The upload's chunker worker: the same chunks as chunkStream (cut points, bytes, SHA-256), the
// NAR's hash and size, and the failures an upload must report (invalid NAR, body error).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { chunkStream } from "../../helpers/chunking-reference.ts";
import { NarError } from "../../../src/nix/nar/parser.ts";
import { NarChunker } from "../../../src/server/upload/chunker.ts";
import { fileNar, seededBytes } from "../../helpers/nar.ts";

const PARAMS = { minSize: 16384, avgSize: 65536, maxSize: 262144 };

/** `data` in pieces of odd sizes, some of them views into a bigger buffer */
async function* pieces(data: Buffer, size = 40_000): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

test("chunks, their hashes and the NAR's hash match chunkStream and SHA-256", async () => {
  const nar = fileNar(seededBytes(5_000_000, 7));
  const expected: Buffer[] = [];
  for await (const c of chunkStream(pieces(nar), PARAMS)) expected.push(c);
  const chunker = new NarChunker(pieces(nar), PARAMS);
  const got = [];
  for await (const c of chunker.chunks()) got.push(c);
  assert.equal(got.length, expected.length);
  got.forEach((c, i) => {
    assert.ok(c.data.equals(expected[i]!));
    assert.equal(c.hash, `sha256:${createHash("sha256").update(expected[i]!).digest("hex")}`);
  });
  const { narHash, narSize } = chunker.result();
  assert.equal(narSize, nar.length);
  assert.ok(narHash.digest.equals(createHash("sha256").update(nar).digest()));
  assert.equal(chunker.received, nar.length);
});

test("an invalid NAR fails with a NarError; a failing body with its own error", async () => {
  const bad = Buffer.concat([fileNar(seededBytes(300_000, 1)).subarray(0, 200_000), Buffer.alloc(200_000, 0xff)]);
  const chunker = new NarChunker(pieces(bad), PARAMS);
  await assert.rejects(async () => {
    for await (const _ of chunker.chunks());
  }, NarError);

  const truncated = fileNar(seededBytes(300_000, 2)).subarray(0, 250_000);
  await assert.rejects(async () => {
    for await (const _ of new NarChunker(pieces(truncated), PARAMS).chunks());
  }, /invalid NAR/);

  async function* failing(): AsyncGenerator<Buffer> {
    yield fileNar(seededBytes(600_000, 3)).subarray(0, 300_000);
    throw new Error("client went away");
  }
  await assert.rejects(async () => {
    for await (const _ of new NarChunker(failing(), PARAMS).chunks());
  }, /client went away/);
});

test("a consumer that stops early leaves no work behind", async () => {
  const nar = fileNar(seededBytes(3_000_000, 9));
  const chunker = new NarChunker(pieces(nar), PARAMS);
  for await (const _ of chunker.chunks()) break;
  assert.throws(() => chunker.result());
});
