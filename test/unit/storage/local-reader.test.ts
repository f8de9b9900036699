// Whole-file reads for downloads on the process's CPU worker pool (storage/local-reader.ts,
// workers/read-files.ts): the reads asked for in one turn go to the pool as one job (64 at most)
// and share a busy worker rather than spawn another, a file of another size than recorded is an
// error naming it, a missing one keeps ENOENT, and a worker that dies fails the jobs it had and no
// others; the pool replaces it. The pool's workers here are scripted
// (test/helpers/scripted-worker.ts): a file named `crash` or `exit` kills one, and a compress job
// whose first byte is 0 is answered after a while.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessagePort } from "node:worker_threads";
import { LocalReader } from "../../../src/storage/local-reader.ts";
import { NarPassSession } from "../../../src/server/upload/nar-pass.ts";
import { fileNar, seededBytes } from "../../helpers/nar.ts";
import { replaceWorkerPool, WorkerPool, type JobOptions } from "../../../src/workers/pool.ts";
import type { FromWorker, ToWorker } from "../../../src/workers/protocol.ts";

const SCRIPTED_WORKER = new URL("../../helpers/scripted-worker.ts", import.meta.url);

const dir = mkdtempSync(join(tmpdir(), "attic-reader-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const files = Array.from({ length: 70 }, (_, i) => {
  const bytes = randomBytes(1000 + i * 100);
  const path = join(dir, `chunk-${i}`);
  writeFileSync(path, bytes);
  return { path, bytes };
});

/** A pool that counts the read jobs it is given and the files in each. */
class CountingPool extends WorkerPool {
  readonly batches: number[] = [];
  override request(msg: (id: number) => ToWorker, transfer?: (ArrayBuffer | MessagePort)[], options?: JobOptions): Promise<FromWorker> {
    const counted = (id: number) => {
      const m = msg(id);
      if (m.kind === "read-files") this.batches.push(m.files.length);
      return m;
    };
    return super.request(counted, transfer, options);
  }
}

/** Runs `body` with `pool` as the process's pool, then closes it and puts the previous one back. */
async function withPool<T>(pool: WorkerPool, body: () => Promise<T>): Promise<T> {
  const previous = replaceWorkerPool(pool);
  try {
    return await body();
  } finally {
    replaceWorkerPool(previous);
    await pool.close();
  }
}

function outcome(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => "resolved",
    (err: Error) => `rejected: ${err.message}`,
  );
}

test("the reads of one turn go to the pool as one job of at most 64 files, on one worker; each file's bytes exactly", async () => {
  const pool = new CountingPool({ size: 2 });
  await withPool(pool, async () => {
    const reader = new LocalReader();
    const got = await Promise.all(files.slice(0, 10).map((f) => reader.read(f.path, f.bytes.length)));
    assert.deepEqual(pool.batches, [10]);
    got.forEach((b, i) => assert.ok(b.equals(files[i]!.bytes), `file ${i}`));

    const all = await Promise.all(files.map((f) => reader.read(f.path, f.bytes.length)));
    assert.deepEqual(pool.batches, [10, 64, 6]);
    all.forEach((b, i) => assert.ok(b.equals(files[i]!.bytes), `file ${i}`));
    assert.equal(pool.running, 1, "two jobs of reads at once shared the one worker: no second isolate for them");
  });
});

/** Two compress jobs at once: the pool spawns both its workers (the scripted ones answer after a while). */
async function spawnBoth(pool: WorkerPool): Promise<void> {
  await Promise.all([0, 1].map(() => pool.request((id) => ({ kind: "compress", id, type: "zstd", level: 1, data: Uint8Array.of(0), hash: false }))));
  assert.equal(pool.running, 2);
}

test("a file of another size than recorded is an error naming it; a missing one keeps ENOENT", async () => {
  await withPool(new WorkerPool({ size: 1 }), async () => {
    const reader = new LocalReader();
    const { path, bytes } = files[3]!;
    await assert.rejects(reader.read(path, bytes.length - 1), (err: Error) => err.message === `${path}: larger than its recorded size ${bytes.length - 1}`);
    await assert.rejects(reader.read(path, bytes.length + 5), (err: Error) => err.message === `${path}: ${bytes.length} bytes, recorded size ${bytes.length + 5}`);
    const missing = join(dir, "missing");
    await assert.rejects(reader.read(missing, 10), (err: NodeJS.ErrnoException) => err.code === "ENOENT" && err.message.includes(missing));
    assert.equal(await reader.exists(missing), false);
    assert.equal(await reader.exists(path), true);
  });
});

for (const [how, name, message] of [
  ["crashes", "crash", /^rejected: attic-worker-1 crashed: scripted crash$/],
  ["exits", "exit", /^rejected: attic-worker-1 exited \(code 3\)$/],
] as const) {
  test(`a worker that ${how} mid-read fails only its own reads; the pool goes on with a replacement`, async () => {
    const pool = new CountingPool({ size: 2, url: SCRIPTED_WORKER });
    await withPool(pool, async () => {
      await spawnBoth(pool);
      const reader = new LocalReader();
      // one turn, both workers idle: the first 64 reads (the killer among them) go to worker 1, the rest to worker 2
      const reads = files.map((f, i) => (i === 5 ? reader.read(join(dir, name), 1) : reader.read(f.path, f.bytes.length)));
      const results = await Promise.all(reads.map(outcome));
      assert.deepEqual(pool.batches, [64, 6]);
      for (const [i, r] of results.entries()) {
        if (i < 64) assert.match(r, message, `read ${i} was on the dead worker`);
        else assert.equal(r, "resolved", `read ${i} was on the other worker`);
      }

      assert.equal(pool.running, 1, "the dead worker left the pool");
      const again = await Promise.all(files.map((f) => reader.read(f.path, f.bytes.length)));
      again.forEach((b, i) => assert.ok(b.equals(files[i]!.bytes), `file ${i}`));
      await spawnBoth(pool); // and it spawns a replacement when it needs one
      assert.ok((await reader.read(files[0]!.path, files[0]!.bytes.length)).equals(files[0]!.bytes));
    });
  });
}

test("reads and an upload's pass share the pool's workers: reads are answered while the pass runs, and the pass goes on", async (t) => {
  const pool = new CountingPool({ size: 2 });
  await withPool(pool, async () => {
    const reader = new LocalReader();
    const nar = fileNar(seededBytes(24_000_000, 5));
    async function* pieces(): AsyncGenerator<Buffer> {
      for (let at = 0; at < nar.length; at += 256 * 1024) yield nar.subarray(at, at + 256 * 1024);
    }
    // the pass takes both workers (its cutter and its partner): reads then share a busy one
    const pass = new NarPassSession(pieces(), { chunking: { minSize: 16384, avgSize: 65536, maxSize: 262144 }, compression: { type: "zstd", level: 3 }, batchSize: 16 });
    let passing = true;
    let readsDuringPass = 0;
    // reads one batch after another, as a download does, for as long as the pass runs
    const reading = (async () => {
      while (passing) {
        const got = await Promise.all(files.slice(0, 32).map((f) => reader.read(f.path, f.bytes.length)));
        got.forEach((b, i) => assert.ok(b.equals(files[i]!.bytes)));
        if (passing) readsDuringPass++;
      }
    })();
    let batches = 0;
    try {
      for await (const batch of pass.batches()) {
        // every batch's chunks are new: the partner compresses them, so both workers stay busy
        await pass.frames(batch.seq, batch.hashes.map((_, i) => i));
        pass.release(batch.seq);
        batches++;
      }
      assert.equal(pass.result().narSize, nar.length);
    } finally {
      passing = false;
      pass.close();
    }
    await reading;
    t.diagnostic(`${batches} batches of the pass; ${readsDuringPass} batches of 32 reads answered meanwhile`);
    assert.equal(pool.running, 2, "no worker beyond the pass's two");
    assert.ok(batches > 15);
    assert.ok(readsDuringPass >= 2, `${readsDuringPass} batches of reads answered while the pass ran`);
    assert.ok(pool.batches.length >= readsDuringPass, "the reads went to the pool");
  });
});
