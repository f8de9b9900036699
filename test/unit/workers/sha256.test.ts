// SHA-256 on the worker pool (src/workers/sha256.ts): the same digests as node:crypto on this
// thread, fed in uneven pieces past the flow control's window, a peek mid-way, a file read by the
// worker itself; and a worker that dies fails the hash it held, the next one runs on a fresh worker.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WorkerPool } from "../../../src/workers/pool.ts";
import { PoolSha256, sha256OfFile, sha256OfStream } from "../../../src/workers/sha256.ts";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest();

test("a running hash: the digest of every byte given, the hash so far on a peek", async () => {
  const data = randomBytes(5 * 1024 * 1024 + 12345);
  const hash = new PoolSha256();
  let at = 0;
  let peeked = false;
  for (let n = 1; at < data.length; n = (n * 7919) % 300_000 + 1) {
    const piece = data.subarray(at, Math.min(data.length, at + n));
    await hash.update(piece);
    at += piece.length;
    if (!peeked && at > 3 * 1024 * 1024) {
      assert.deepEqual(await hash.peek(), sha256(data.subarray(0, at)), "the hash so far");
      peeked = true;
    }
  }
  const { digest, size } = await hash.digest();
  assert.deepEqual(digest, sha256(data));
  assert.equal(size, data.length);
  assert.equal(data.byteLength, 5 * 1024 * 1024 + 12345, "the caller's bytes are still there (copied, not moved)");
  assert.deepEqual((await sha256OfStream((async function* () {})())).digest, sha256(new Uint8Array(0)), "no bytes");
});

test("a file hashed by the worker that reads it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "attic-sha256-"));
  try {
    const data = randomBytes(3 * 1024 * 1024 + 7);
    writeFileSync(join(dir, "f"), data);
    assert.deepEqual(await sha256OfFile(join(dir, "f")), { digest: sha256(data), size: data.length });
    await assert.rejects(sha256OfFile(join(dir, "missing")), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a worker that dies fails the hash it held; the next hash gets a fresh worker", async () => {
  const pool = new WorkerPool({ size: 1, url: new URL("../../helpers/scripted-worker.ts", import.meta.url) });
  try {
    const hash = new PoolSha256(() => pool);
    const some = randomBytes(1000);
    await hash.update(some);
    assert.deepEqual(await hash.peek(), sha256(some), "running on the worker about to die");
    // the scripted worker crashes on a compress job whose first byte is 1
    await assert.rejects(pool.request((id) => ({ kind: "compress", id, type: "zstd", level: 1, data: Uint8Array.of(1), hash: false })), /crashed: scripted crash/);
    await assert.rejects(hash.digest(), /crashed: scripted crash/);
    assert.equal(hash.broken, true);
    const again = new PoolSha256(() => pool);
    await again.update(Buffer.from("abc"));
    assert.deepEqual((await again.digest()).digest, sha256(Buffer.from("abc")));
  } finally {
    await pool.close();
  }
});
