// One NAR's single pass on the worker pool: the same chunks as chunkStream (cut points, SHA-256,
// and frames that decode to their bytes), the NAR's hash, size and listing from the same parse, a
// whole NAR's compressed stream, and the failures an upload must report (invalid NAR, body error).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import zlib from "node:zlib";
import { chunkStream } from "../../helpers/chunking-reference.ts";
import { NarError } from "../../../src/nix/nar/parser.ts";
import { NarListing } from "../../../src/nix/nar/listing.ts";
import { NarPassSession } from "../../../src/server/upload/nar-pass.ts";
import { replaceWorkerPool, WorkerPool } from "../../../src/workers/pool.ts";
import { fileNar, seededBytes } from "../../helpers/nar.ts";

const PARAMS = { minSize: 16384, avgSize: 65536, maxSize: 262144 };
const ZSTD = { type: "zstd" as const, level: 3 };

/** `data` in pieces of odd sizes, some of them views into a bigger buffer */
async function* pieces(data: Buffer, size = 40_000): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

function listingOf(nar: Buffer): string {
  const l = new NarListing();
  l.update(nar);
  return l.finish();
}

test("batches hold chunkStream's chunk hashes and sizes; frames asked for decode to the chunks; hash, size, listing", async () => {
  const nar = fileNar(seededBytes(5_000_000, 7));
  const expected: Buffer[] = [];
  for await (const c of chunkStream(pieces(nar), PARAMS)) expected.push(c);
  const pass = new NarPassSession(pieces(nar), { chunking: PARAMS, compression: ZSTD, batchSize: 16 });
  const hashes: string[] = [];
  const sizes: number[] = [];
  let checked = 0;
  try {
    for await (const batch of pass.batches()) {
      hashes.push(...batch.hashes);
      sizes.push(...batch.sizes);
      // every other chunk of the batch, as if only those were new
      const indexes = batch.hashes.map((_, i) => i).filter((i) => i % 2 === 0);
      const frames = await pass.frames(batch.seq, indexes);
      frames.forEach((f, j) => {
        const chunk = expected[batch.seq * 16 + indexes[j]!]!;
        assert.ok(zlib.zstdDecompressSync(f.frame).equals(chunk));
        assert.equal(f.fileHash, `sha256:${createHash("sha256").update(f.frame).digest("hex")}`);
        checked++;
      });
      pass.release(batch.seq);
    }
    assert.deepEqual(sizes, expected.map((c) => c.length));
    assert.deepEqual(hashes, expected.map((c) => createHash("sha256").update(c).digest("hex")));
    assert.ok(checked > 0);
    const { narHash, narSize, listing } = pass.result();
    assert.equal(narSize, nar.length);
    assert.ok(narHash.digest.equals(createHash("sha256").update(nar).digest()));
    assert.equal(zlib.zstdDecompressSync(listing!).toString(), listingOf(nar));
    assert.equal(pass.received, nar.length);
  } finally {
    pass.close();
  }
});

for (const compression of [ZSTD, { type: "brotli" as const, level: 2 }, { type: "none" as const, level: 0 }, { type: "xz" as const, level: 1 }]) {
  test(`a whole NAR (${compression.type}): its stored bytes come back whole, with their hash and size (xz: raw, compressed by the caller)`, async () => {
    const nar = fileNar(seededBytes(1_500_000, 5));
    const pass = new NarPassSession(pieces(nar), { chunking: null, compression, batchSize: 0 });
    try {
      const out: Buffer[] = [];
      for await (const piece of pass.output()) out.push(piece);
      const stored = Buffer.concat(out);
      const r = pass.result();
      assert.ok(r.narHash.digest.equals(createHash("sha256").update(nar).digest()));
      const decoded =
        compression.type === "zstd" ? zlib.zstdDecompressSync(stored) : compression.type === "brotli" ? zlib.brotliDecompressSync(stored) : stored;
      assert.ok(decoded.equals(nar));
      if (compression.type === "xz") assert.equal(r.fileHash, undefined);
      else {
        assert.equal(r.fileHash, `sha256:${createHash("sha256").update(stored).digest("hex")}`);
        assert.equal(r.fileSize, stored.length);
      }
    } finally {
      pass.close();
    }
  });
}

test("an invalid NAR fails with a NarError; a failing body with its own error", async () => {
  const run = async (source: AsyncIterable<Buffer>, chunking: typeof PARAMS | null) => {
    const pass = new NarPassSession(source, { chunking, compression: ZSTD, batchSize: 16 });
    try {
      for await (const b of chunking ? pass.batches() : pass.output()) if (!Buffer.isBuffer(b)) pass.release(b.seq);
    } finally {
      pass.close();
    }
  };
  for (const chunking of [PARAMS, null]) {
    const bad = Buffer.concat([fileNar(seededBytes(300_000, 1)).subarray(0, 200_000), Buffer.alloc(200_000, 0xff)]);
    await assert.rejects(run(pieces(bad), chunking), NarError);
    const truncated = fileNar(seededBytes(300_000, 2)).subarray(0, 250_000);
    await assert.rejects(run(pieces(truncated), chunking), /invalid NAR/);
    async function* failing(): AsyncGenerator<Buffer> {
      yield fileNar(seededBytes(600_000, 3)).subarray(0, 300_000);
      throw new Error("client went away");
    }
    await assert.rejects(run(failing(), chunking), /client went away/);
  }
});

test("a consumer that stops early leaves no work behind", async () => {
  // more than the pieces in flight and the batches queued can hold (the ring is 16 MiB, its pieces
  // 1 MiB): the pass cannot have ended by itself when the consumer stops after one batch
  const nar = fileNar(seededBytes(40_000_000, 9));
  const pass = new NarPassSession(pieces(nar), { chunking: PARAMS, compression: ZSTD, batchSize: 16 });
  for await (const _ of pass.batches()) break;
  pass.close();
  assert.throws(() => pass.result());
});

test("on a pool of two, the partner hashes batches while it has nothing to compress: batches still come in NAR order with the same hashes", async () => {
  const pool = new WorkerPool({ size: 2 });
  const previous = replaceWorkerPool(pool);
  try {
    const nar = fileNar(seededBytes(6_000_000, 11));
    const expected: Buffer[] = [];
    for await (const c of chunkStream(pieces(nar), PARAMS)) expected.push(c);
    // batches of 2: many batches, hashed by both workers (nothing is compressed: a new version of a path)
    const pass = new NarPassSession(pieces(nar), { chunking: PARAMS, compression: ZSTD, batchSize: 2 });
    const seqs: number[] = [];
    const hashes: string[] = [];
    try {
      for await (const batch of pass.batches()) {
        seqs.push(batch.seq);
        hashes.push(...batch.hashes);
        // a new chunk now and then: its frame still comes back from the partner
        if (batch.seq % 10 === 0) {
          const [frame] = await pass.frames(batch.seq, [0]);
          assert.ok(zlib.zstdDecompressSync(frame!.frame).equals(expected[batch.seq * 2]!));
        }
        pass.release(batch.seq);
      }
      assert.deepEqual(seqs, seqs.map((_, i) => i));
      assert.deepEqual(hashes, expected.map((c) => createHash("sha256").update(c).digest("hex")));
      assert.ok(pass.hashedByPartner > 0, "the partner hashed some batches");
      assert.ok(pass.result().narHash.digest.equals(createHash("sha256").update(nar).digest()));
    } finally {
      pass.close();
    }
  } finally {
    replaceWorkerPool(previous);
    await pool.close();
  }
});

test("a NAR bigger than its ring, many batches stored at once: the ring laps, frames come back to their asks from either worker, all intact", async () => {
  const pool = new WorkerPool({ size: 2 });
  const previous = replaceWorkerPool(pool);
  try {
    const nar = fileNar(seededBytes(48_000_000, 13));
    const expected: Buffer[] = [];
    for await (const c of chunkStream(pieces(nar, 65_536), PARAMS)) expected.push(c);
    const pass = new NarPassSession(pieces(nar, 65_536), { chunking: PARAMS, compression: ZSTD, batchSize: 16, narSize: nar.length });
    const inFlight = new Set<Promise<void>>();
    let checked = 0;
    try {
      for await (const batch of pass.batches()) {
        // every chunk new, as with new data; up to 6 batches stored at once, as the upload does
        const stored = pass.frames(batch.seq, batch.hashes.map((_, i) => i)).then((frames) => {
          frames.forEach((f, i) => {
            assert.ok(zlib.zstdDecompressSync(f.frame).equals(expected[batch.seq * 16 + i]!), `batch ${batch.seq} chunk ${i}`);
            checked++;
          });
          pass.release(batch.seq);
        });
        const p = stored.finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= 6) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      assert.equal(checked, expected.length);
      assert.ok(pass.result().narHash.digest.equals(createHash("sha256").update(nar).digest()));
      assert.ok(pass.compressedByCutter > 0, "the cutting worker compressed some batches while its partner was backed up");
    } finally {
      pass.close();
    }
  } finally {
    replaceWorkerPool(previous);
    await pool.close();
  }
});
