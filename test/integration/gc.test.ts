// The garbage collector against a real server and real storage, on SQLite and PostgreSQL:
// retention (per cache, global, never), shared NARs, soft-deleted caches, quotas (LRU), crash
// leftovers after the grace period only, the lease, uploads racing a collection, failed file
// deletions retried, a run over 100,000 orphan chunks; and the seed's scenario on S3.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, utimesSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { sql } from "kysely";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadNar, type NarFixture } from "../helpers/nar.ts";
import { runGarbageCollectionOnce, formatGcReport, type GcConfig } from "../../src/gc/index.ts";
import { insertNar } from "../../src/db/queries/nars.ts";
import { insertPendingChunk } from "../../src/db/queries/chunks.ts";
import { tryAcquireLease } from "../../src/db/queries/leases.ts";
import type { RemoteFile } from "../../src/storage/types.ts";
import { blockedAt, bucketKeys, chunkStates, failingFor, insertOrphanChunks } from "./gc-fixtures.ts";

const GC: GcConfig = { defaultRetentionPeriod: 0, staleGracePeriod: 3600, maxSize: null };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The collector's clock, `ms` ahead of the real one: retention runs out without waiting for it. */
const ahead = (ms: number) => () => new Date(Date.now() + ms);

async function push(s: TestServer, cache: string, fx: NarFixture): Promise<void> {
  const res = await uploadNar(s, fx, { cache, token: s.rootToken() });
  assert.equal(res.status, 200, await res.text());
}

async function status(s: TestServer, cache: string, fx: NarFixture): Promise<number> {
  return (await s.fetch(`/${cache}/${fx.storePathHash}.narinfo`, { token: s.rootToken() })).status;
}

async function configure(s: TestServer, cache: string, body: Record<string, unknown>): Promise<void> {
  const res = await s.fetch(`/_api/v1/cache-config/${cache}`, {
    method: "PATCH",
    token: s.rootToken(),
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.text());
}

function storageFiles(s: TestServer): string[] {
  const root = join(s.dir, "storage");
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "local" },
]);

for (const backend of backends) {
  describe(`garbage collection (${backendName(backend)})`, () => {
    const chunking = { threshold: 1, min: 16384, avg: 65536, max: 262144 };

    test("the seed's 1-second retention: the object goes, the storage is left holding only VERSION", async () => {
      // one object per chunk: this test counts chunk files; dead packs are dropped by compaction (docs/packs.md)
      const s = await startServer({ backend, chunking, storageExtra: "packs = false" });
      try {
        await createCacheViaApi(s, "hello");
        const fx = narFixture(seededBytes(300_000, 1), "attic");
        await push(s, "hello", fx);
        await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC });
        assert.equal(await status(s, "hello", fx), 200, "kept: no retention configured");
        await configure(s, "hello", { retention_period: { Period: 1 } });
        const report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC, now: ahead(1100) });
        assert.equal(await status(s, "hello", fx), 404);
        assert.equal(report.objectsExpired, 1);
        assert.equal(report.nars, 1);
        assert.ok(report.chunks >= 2 && report.bytesFreed > 0, formatGcReport(report));
        assert.deepEqual(storageFiles(s), ["VERSION"]);
        assert.match(formatGcReport(report), /objects removed: 1/);
      } finally {
        await s.stop();
      }
    });

    test("global default retention; a cache with 0 keeps everything; a download renews an object", async () => {
      const s = await startServer({ backend });
      try {
        await createCacheViaApi(s, "a");
        await createCacheViaApi(s, "forever");
        const old = narFixture(seededBytes(1000, 2), "old");
        const used = narFixture(seededBytes(1000, 3), "used");
        const kept = narFixture(seededBytes(1000, 4), "kept");
        await push(s, "a", old);
        await push(s, "a", used);
        await push(s, "forever", kept);
        await configure(s, "forever", { retention_period: { Period: 0 } });
        // the collector's "a second ago" falls between the uploads and the download
        await sleep(10);
        const between = Date.now();
        await sleep(10);
        assert.equal((await s.fetch(`/a/nar/${used.storePathHash}.nar`, { token: s.rootToken() })).status, 200);
        await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: { ...GC, defaultRetentionPeriod: 1 }, now: () => new Date(between + 1000) });
        assert.equal(await status(s, "a", old), 404);
        assert.equal(await status(s, "a", used), 200, "downloaded within the period");
        assert.equal(await status(s, "forever", kept), 200);
      } finally {
        await s.stop();
      }
    });

    test("a NAR shared by two caches survives when one cache's object is collected; soft-deleted caches are collected", async () => {
      const s = await startServer({ backend, chunking, top: "soft-delete-caches = true" });
      try {
        await createCacheViaApi(s, "short");
        await createCacheViaApi(s, "long");
        await createCacheViaApi(s, "gone");
        const fx = narFixture(seededBytes(200_000, 5), "shared");
        const lone = narFixture(seededBytes(200_000, 6), "lone");
        await push(s, "short", fx);
        await push(s, "long", fx);
        await push(s, "gone", lone);
        await configure(s, "short", { retention_period: { Period: 1 } });
        const del = await s.fetch("/_api/v1/cache-config/gone", { method: "DELETE", token: s.rootToken() });
        assert.equal(del.status, 200);
        const report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC, now: ahead(1100) });
        assert.equal(report.objectsExpired, 1);
        assert.equal(report.objectsOfDeletedCaches, 1);
        assert.equal(report.nars, 1, "only the deleted cache's NAR");
        assert.equal(await status(s, "short", fx), 404);
        const info = await s.fetch(`/long/${fx.storePathHash}.narinfo`, { token: s.rootToken() });
        assert.equal(info.status, 200);
        const nar = await s.fetch(`/long/nar/${fx.storePathHash}.nar`, { token: s.rootToken() });
        assert.equal(nar.status, 200);
        assert.ok(Buffer.from(await nar.arrayBuffer()).length > 0);
      } finally {
        await s.stop();
      }
    });

    test("quotas: the least recently used objects go first until the cache fits", async () => {
      const s = await startServer({ backend });
      try {
        await createCacheViaApi(s, "q");
        const fixtures = [0, 1, 2, 3].map((i) => narFixture(seededBytes(10_000, 10 + i), `q${i}`));
        for (const fx of fixtures) {
          await push(s, "q", fx);
          await sleep(20);
        }
        // q0 is the oldest but was just downloaded: q1 and q2 are the least recently used
        await sleep(20);
        assert.equal((await s.fetch(`/q/nar/${fixtures[0]!.storePathHash}.nar`, { token: s.rootToken() })).status, 200);
        const size = fixtures[0]!.narSize;
        await configure(s, "q", { max_size: size * 2 + 100 });
        const report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC });
        assert.equal(report.objectsOverQuota, 2);
        assert.deepEqual(await Promise.all(fixtures.map((fx) => status(s, "q", fx))), [200, 404, 404, 200]);
        // the global quota counts every cache; q3 (created before q0's download) is now the LRU
        const report2 = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: { ...GC, maxSize: size + 100 } });
        assert.equal(report2.objectsOverQuota, 1);
        assert.deepEqual(await Promise.all(fixtures.map((fx) => status(s, "q", fx))), [200, 404, 404, 404]);
      } finally {
        await s.stop();
      }
    });

    test("crash leftovers (pending rows, leaked holds, temp files) are reaped after the grace period only", async () => {
      const s = await startServer({ backend });
      try {
        const longAgo = new Date(Date.now() - 2 * 3600_000);
        const file = (n: number) => s.storage.remoteFileFor(`00000000-0000-4000-8000-00000000000${n}.chunk`);
        const freshNar = await insertNar(s.db, { state: "P", nar_hash: "sha256:" + "1".repeat(64), nar_size: 1, compression: "zstd", num_chunks: 0 });
        const staleNar = await insertNar(s.db, { state: "P", nar_hash: "sha256:" + "2".repeat(64), nar_size: 1, compression: "zstd", num_chunks: 0, created_at: longAgo });
        const staleChunk = await insertPendingChunk(s.db, { chunk_hash: "sha256:" + "3".repeat(64), chunk_size: 1, compression: "zstd", remote_file: JSON.stringify(file(1).remoteFile), remote_file_id: file(1).remoteFileId, created_at: longAgo });
        const freshChunk = await insertPendingChunk(s.db, { chunk_hash: "sha256:" + "4".repeat(64), chunk_size: 1, compression: "zstd", remote_file: JSON.stringify(file(2).remoteFile), remote_file_id: file(2).remoteFileId });
        // a valid orphan NAR whose hold leaked long ago, and one held right now
        const leaked = await insertNar(s.db, { state: "V", nar_hash: "sha256:" + "5".repeat(64), nar_size: 1, compression: "zstd", num_chunks: 0, holders_count: 1 });
        await s.db.kysely.updateTable("nar").set({ held_at: longAgo }).where("id", "=", leaked).execute();
        const held = await insertNar(s.db, { state: "V", nar_hash: "sha256:" + "6".repeat(64), nar_size: 1, compression: "zstd", num_chunks: 0, holders_count: 1 });
        // the same for chunks: a valid orphan whose hold leaked, one held now
        const leakedChunk = await insertPendingChunk(s.db, { chunk_hash: "sha256:" + "7".repeat(64), chunk_size: 1, compression: "zstd", remote_file: JSON.stringify(file(3).remoteFile), remote_file_id: file(3).remoteFileId });
        const heldChunk = await insertPendingChunk(s.db, { chunk_hash: "sha256:" + "8".repeat(64), chunk_size: 1, compression: "zstd", remote_file: JSON.stringify(file(4).remoteFile), remote_file_id: file(4).remoteFileId });
        await s.db.kysely.updateTable("chunk").set({ state: "V" }).where("id", "in", [leakedChunk, heldChunk]).execute();
        await s.db.kysely.updateTable("chunk").set({ held_at: longAgo }).where("id", "=", leakedChunk).execute();
        // files: the dead pending chunk's (written before the crash), the leaked chunk's, and
        // temp files of writes that never finished, one old and one in progress
        const shard = join(s.dir, "storage", "0", "00");
        mkdirSync(shard, { recursive: true });
        for (const n of [1, 3, 4]) writeFileSync(join(shard, `00000000-0000-4000-8000-00000000000${n}.chunk`), "x");
        writeFileSync(join(shard, ".tmp-crashed"), "partial");
        utimesSync(join(shard, ".tmp-crashed"), longAgo, longAgo);
        writeFileSync(join(shard, ".tmp-writing"), "partial");

        const ids = async (table: "nar" | "chunk") => (await s.db.kysely.selectFrom(table).select("id").execute()).map((r) => r.id).sort((a, b) => a - b);
        // a grace period longer than their age: nothing is touched
        await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: { ...GC, staleGracePeriod: 3 * 3600 } });
        assert.deepEqual(await ids("nar"), [freshNar, staleNar, leaked, held].sort((a, b) => a - b));
        assert.deepEqual(await ids("chunk"), [staleChunk, freshChunk, leakedChunk, heldChunk].sort((a, b) => a - b));
        assert.equal(storageFiles(s).length, 6);

        const report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC });
        assert.equal(report.staleNars, 1);
        assert.equal(report.staleChunks, 1);
        assert.equal(report.nars, 1, "the NAR whose hold leaked");
        assert.equal(report.chunks, 2, "the dead pending chunk and the chunk whose hold leaked");
        assert.equal(report.tempFiles, 1);
        assert.deepEqual(await ids("nar"), [freshNar, held].sort((a, b) => a - b));
        assert.deepEqual(await ids("chunk"), [freshChunk, heldChunk].sort((a, b) => a - b));
        assert.deepEqual(storageFiles(s).sort(), [".tmp-writing", "00000000-0000-4000-8000-000000000004.chunk", "VERSION"].sort());
      } finally {
        await s.stop();
      }
    });

    test("two collectors at once: one does the work, the other skips; a crashed collector's lease expires", async () => {
      const s = await startServer({ backend });
      try {
        await insertOrphanChunks(s.db, s.storage, 10);
        const slow = blockedAt(s.storage);
        const first = runGarbageCollectionOnce({ db: s.db, storage: slow.storage, config: GC });
        await slow.reached; // the first run is deleting files, under the lease
        const second = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC });
        assert.equal(second.ran, false);
        assert.equal(second.chunks, 0);
        assert.match(formatGcReport(second), /skipped/);
        assert.deepEqual(await chunkStates(s.db), { D: 10 }, "the second run touched nothing");
        slow.open();
        const done = await first;
        assert.equal(done.ran, true);
        assert.equal(done.chunks, 10);
        assert.equal((await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC })).ran, true, "the lease was released");

        // a collector that died holding the lease: others skip until it expires
        assert.equal(await tryAcquireLease(s.db, "gc", "crashed-collector", 300), true);
        await insertOrphanChunks(s.db, s.storage, 3, { from: 100 });
        assert.equal((await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC })).ran, false);
        await sleep(350);
        const after = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC });
        assert.equal(after.ran, true);
        assert.equal(after.chunks, 3);
      } finally {
        await s.stop();
      }
    });

    test("file deletions that fail keep their rows (state D) for the next run; the others are freed", async () => {
      const s = await startServer({ backend });
      try {
        const root = join(s.dir, "storage");
        // more than one page (1,000 rows), the whole first page failing
        await insertOrphanChunks(s.db, s.storage, 1500, { localRoot: root });
        const firstPage = (f: RemoteFile) => "Local" in f && parseInt(f.Local.name.slice(0, 8), 16) < 1000;
        const report = await runGarbageCollectionOnce({ db: s.db, storage: failingFor(s.storage, firstPage), config: GC });
        assert.equal(report.deleteFailures, 1000, formatGcReport(report));
        assert.equal(report.chunks, 500, "the page after a failed one is still tried");
        assert.equal(report.bytesFreed, 500 * 10);
        assert.match(formatGcReport(report), /could not be deleted \(retried next run\): 1000/);
        assert.deepEqual(await chunkStates(s.db), { D: 1000 });
        assert.equal(storageFiles(s).length, 1 + 1000);

        const retry = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC });
        assert.equal(retry.chunks, 1000);
        assert.equal(retry.deleteFailures, 0);
        assert.deepEqual(await chunkStates(s.db), {});
        assert.deepEqual(storageFiles(s), ["VERSION"]);
      } finally {
        await s.stop();
      }
    });

    test("uploads racing collections never publish a narinfo whose NAR is missing", async () => {
      const s = await startServer({ backend, chunking });
      try {
        await createCacheViaApi(s, "race");
        await configure(s, "race", { retention_period: { Period: 1 } });
        const base = seededBytes(400_000, 50);
        let served = 0;
        for (let round = 0; round < 4; round++) {
          const fixtures = [0, 1, 2].map((i) => narFixture(Buffer.concat([base, seededBytes(50_000, 60 + i)]), `r${round}-${i}`));
          await Promise.all(fixtures.map((fx) => push(s, "race", fx)));
          // the collector's "a second ago" falls after these uploads and before the ones below
          await sleep(10);
          const between = Date.now() - 5;
          const now = () => new Date(between + 1000);
          // collect while the same NARs (same chunks) are uploaded again under new store paths
          const again = fixtures.map((fx) => ({ ...narFixture(Buffer.alloc(0)), nar: fx.nar, narHash: fx.narHash, narSize: fx.narSize }));
          await Promise.all([runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC, now }), ...again.map((fx) => push(s, "race", fx))]);
          for (const fx of again) {
            const info = await s.fetch(`/race/${fx.storePathHash}.narinfo`, { token: s.rootToken() });
            if (info.status === 404) continue; // collected after its upload: fine, as long as nothing is half there
            assert.equal(info.status, 200);
            const nar = await s.fetch(`/race/nar/${fx.storePathHash}.nar`, { token: s.rootToken() });
            assert.equal(nar.status, 200, `round ${round}: narinfo served but NAR ${nar.status}`);
            assert.ok(Buffer.from(await nar.arrayBuffer()).length > 0);
            served++;
          }
        }
        // every upload collected would pass the checks above without testing anything
        assert.ok(served > 0, "no round served a re-uploaded path");
      } finally {
        await s.stop();
      }
    });

    test("100,000 orphan chunks are freed in one run", async () => {
      const s = await startServer({ backend });
      try {
        const n = 100_000;
        await insertOrphanChunks(s.db, s.storage, n);
        const report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC });
        assert.equal(report.chunks, n, formatGcReport(report));
        assert.equal(report.bytesFreed, 10 * n);
        const left = await sql<{ n: number }>`SELECT count(*) AS n FROM chunk`.execute(s.db.kysely);
        assert.equal(Number(left.rows[0]!.n), 0);
      } finally {
        await s.stop();
      }
    });
  });
}

describe("garbage collection (postgres+s3)", () => {
  test("the seed's 1-second retention on S3: the object goes, the bucket is left with no chunk", async () => {
    // one object per chunk: this test counts chunk files; dead packs are dropped by compaction (docs/packs.md)
    const s = await startServer({ backend: { db: "postgres", storage: "s3" }, chunking: { threshold: 1, min: 16384, avg: 65536, max: 262144 }, storageExtra: "packs = false" });
    try {
      if (s.config.storage.type !== "s3") throw new Error("expected S3 storage");
      const bucket = s.config.storage.bucket;
      await createCacheViaApi(s, "hello");
      await createCacheViaApi(s, "kept");
      const fx = narFixture(seededBytes(300_000, 70), "gone");
      const kept = narFixture(seededBytes(100_000, 71), "kept");
      await push(s, "hello", fx);
      await push(s, "kept", kept);
      const keysBefore = (await bucketKeys(bucket)).filter((k) => k.endsWith(".chunk"));
      assert.ok(keysBefore.length >= 3, `chunks in the bucket: ${keysBefore.length}`);
      await configure(s, "hello", { retention_period: { Period: 1 } });
      const report = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: GC, now: ahead(1100) });
      assert.equal(report.objectsExpired, 1);
      assert.equal(report.deleteFailures, 0);
      assert.ok(report.chunks >= 2, formatGcReport(report));
      assert.equal(await status(s, "hello", fx), 404);
      const left = (await bucketKeys(bucket)).filter((k) => k.endsWith(".chunk"));
      const rows = await s.db.kysely.selectFrom("chunk").select("remote_file").execute();
      assert.equal(left.length, keysBefore.length - report.chunks);
      assert.deepEqual(left.sort(), rows.map((r) => (JSON.parse(r.remote_file) as { S3: { key: string } }).S3.key).sort(), "only the kept cache's chunks remain");
      const nar = await s.fetch(`/kept/nar/${kept.storePathHash}.nar`, { token: s.rootToken() });
      assert.equal(nar.status, 200);
      await nar.arrayBuffer();
    } finally {
      await s.stop();
    }
  });
});
