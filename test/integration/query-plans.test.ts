// Query plans of the hot paths on SQLite. Without statistics SQLite may let a `state = ...` term
// drive upstream's (state, holders_count) index although the statement names a hash or an id:
// then every upload claim walks all valid chunks and uploads slow down as the cache grows. Every
// statement an upload, a narinfo or a NAR download sends is captured and EXPLAINed here; none may
// scan a table or search through a state index (get-missing-paths finds NARs with a lost chunk
// through a partial index).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompiledQuery } from "kysely";
import { openDatabase } from "../../src/db/connect.ts";
import { migrate } from "../../src/db/migrations/index.ts";
import { createCache, getCacheByName } from "../../src/db/queries/caches.ts";
import { insertPack, markPackedChunksValid } from "../../src/db/queries/packs.ts";
import { claimChunk, claimChunks, discardUnusedChunks, findAndLockChunk, markChunksValid, releaseChunks } from "../../src/db/queries/chunks.ts";
import { claimNar, findAndLockNar, linkChunks, markNarValid, narHasMissingChunks, releaseNar } from "../../src/db/queries/nars.ts";
import { markChunksLost } from "../../src/db/queries/repair.ts";
import { bumpLastAccessed, findCacheAndObject, findNarChunks, findRepeatedChunks, getMissingPaths, narChunkSummary, narStorageSummary, servedChunkPager, upsertObject } from "../../src/db/queries/objects.ts";

const sha = () => `sha256:${randomBytes(32).toString("hex")}`;
let n = 0;
const chunkRow = (hash = sha()) => ({
  chunk_hash: hash,
  chunk_size: 10,
  compression: "zstd",
  remote_file: JSON.stringify({ Local: { name: `f${++n}.chunk` } }),
  remote_file_id: `local:f${n}.chunk`,
});

test("the statements of an upload's chunk batches have one text whatever the batch's size (compiled and planned once)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "attic-fixed-"));
  {
    const texts = new Map<number, Set<string>>();
    let size = 0;
    const db = await openDatabase(`sqlite://${join(dir, "fixed.db")}?mode=rwc`, {
      onQuery: (sql) => {
        if (size > 0 && !/^\s*(begin|commit|rollback|savepoint|release|pragma)\b/i.test(sql)) texts.get(size)!.add(sql);
      },
    });
    try {
      await migrate(db);
      const packId = await insertPack(db, { remote_file: JSON.stringify({ Local: { name: "q.pack" } }), remote_file_id: "local:q.pack" });
      for (const n of [1, 3, 16]) {
        const nar = await claimNar(db, { nar_hash: sha(), nar_size: 100, compression: "zstd", num_chunks: 0 }, { busyAfter: new Date(Date.now() - 60_000) });
        const narId = (nar as { id: number }).id;
        const old = (await claimChunks(db, [chunkRow()], new Date(Date.now() - 60_000))).map((c) => (c as { id: number }).id);
        await markPackedChunksValid(db, old.map((id) => ({ id, fileHash: sha(), fileSize: 5, packId, packOffset: 0 })));
        const oldHash = (await db.kysely.selectFrom("chunk").select("chunk_hash").where("id", "=", old[0]!).executeTakeFirstOrThrow()).chunk_hash;
        size = n;
        texts.set(n, new Set());
        // one found, n - 1 created; marked valid in a pack; linked (holds given up)
        const rows = [chunkRow(oldHash), ...Array.from({ length: n - 1 }, () => chunkRow())];
        const claims = await claimChunks(db, rows, new Date(Date.now() - 60_000));
        const ids = claims.map((c) => (c.kind === "found" ? c.chunk.id : (c as { id: number }).id));
        await markPackedChunksValid(db, ids.slice(1).map((id, i) => ({ id, fileHash: sha(), fileSize: 5, packId, packOffset: 5 * i })));
        await linkChunks(db, narId, ids.map((chunkId, seq) => ({ seq, chunkId })));
        // and claimed with their links in one transaction, as uploads claim (one found, n - 1 created)
        const linked = [chunkRow(oldHash), ...Array.from({ length: n - 1 }, () => chunkRow())];
        await claimChunks(db, linked, new Date(Date.now() - 60_000), { narId, seqs: linked.map((_, i) => n + i) });
        size = 0;
      }
      // n = 1 creates nothing, so it runs fewer statements; each text it runs is one of the others'
      const [one, three, sixteen] = [texts.get(1)!, texts.get(3)!, texts.get(16)!];
      assert.deepEqual([...sixteen].sort(), [...three].sort());
      for (const t of one) assert.ok(three.has(t), `only for a batch of 1: ${t}`);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("SQLite: the statements of uploads, narinfo and NAR downloads use hash or id indexes, never a table scan or a state index", async () => {
  const dir = mkdtempSync(join(tmpdir(), "attic-plans-"));
  const captured: { sql: string; parameters: readonly unknown[] }[] = [];
  let capturing = false;
  const db = await openDatabase(`sqlite://${join(dir, "plans.db")}?mode=rwc`, {
    onQuery: (sql, parameters) => {
      if (capturing) captured.push({ sql, parameters });
    },
  });
  try {
    await migrate(db);
    assert.equal(await createCache(db, { name: "plans", keypair: "kp", is_public: false, store_dir: "/nix/store", priority: 41, upstream_cache_key_names: "[]" }), true);
    const cache = (await getCacheByName(db, "plans"))!;

    capturing = true;
    // an upload: NAR claim, chunk claims (batched and one by one), files marked valid, links, object
    const nar = await claimNar(db, { nar_hash: sha(), nar_size: 100, compression: "zstd", num_chunks: 0 }, { busyAfter: new Date(Date.now() - 60_000) });
    assert.equal(nar.kind, "created");
    const narId = (nar as { id: number }).id;
    const rows = [chunkRow(), chunkRow(), chunkRow()];
    const claims = await claimChunks(db, rows, new Date(Date.now() - 60_000));
    const ids = claims.map((c) => (c as { id: number }).id);
    const single = await claimChunk(db, chunkRow(), new Date(Date.now() - 60_000));
    await markChunksValid(db, [...ids, (single as { id: number }).id].map((id) => ({ id, fileHash: sha(), fileSize: 5 })));
    // packed chunks turned valid at an upload's commit
    const packId = await insertPack(db, { remote_file: JSON.stringify({ Local: { name: "p.pack" } }), remote_file_id: "local:p.pack" });
    const packed = (await claimChunks(db, [chunkRow(), chunkRow()], new Date(Date.now() - 60_000))).map((c) => (c as { id: number }).id);
    await markPackedChunksValid(db, packed.map((id, i) => ({ id, fileHash: sha(), fileSize: 5, packId, packOffset: 5 * i })));
    // the found path: a valid chunk claimed again, batched and one by one
    const again = await claimChunks(db, [chunkRow(rows[0]!.chunk_hash)], new Date());
    assert.equal(again[0]!.kind, "found");
    assert.equal((await findAndLockChunk(db, rows[1]!.chunk_hash, "zstd"))?.id, ids[1]);
    await linkChunks(db, narId, ids.map((chunkId, seq) => ({ seq, chunkId })));
    await markNarValid(db, narId, ids.length);
    await upsertObject(db, { cache_id: cache.id, nar_id: narId, store_path_hash: "0".repeat(32), store_path: `/nix/store/${"0".repeat(32)}-x`, references: "[]", sigs: "[]" });
    await releaseChunks(db, [(single as { id: number }).id, ids[0]!, ids[1]!]);
    await discardUnusedChunks(db, [(single as { id: number }).id]);
    // NAR-level dedup, narinfo, NAR download, get-missing-paths
    const found = await findAndLockNar(db, sha());
    assert.equal(found, null);
    await narHasMissingChunks(db, narId);
    await releaseNar(db, narId);
    const match = (await findCacheAndObject(db, "plans", "0".repeat(32)))?.match;
    assert.ok(match);
    await narChunkSummary(db, narId);
    await findNarChunks(db, narId, { afterSeq: -1, limit: 256 });
    // a NAR download's pages (by chunkref id, the last one by seq) and its repeated chunks
    const pager = servedChunkPager(db, narId);
    await pager(-1, 1);
    await pager(0, 1);
    await findRepeatedChunks(db, narId);
    await narStorageSummary(db, narId);
    await bumpLastAccessed(db, match.object.id);
    await getMissingPaths(db, "plans", ["0".repeat(32), "1".repeat(32)]);
    // a chunk file found lost: the NAR's path is missing (a probe of the partial index)
    await markChunksLost(db, [ids[2]!]);
    assert.deepEqual(await getMissingPaths(db, "plans", ["0".repeat(32)]), ["0".repeat(32)]);
    capturing = false;

    const statements = captured.filter((q) => !/^\s*(begin|commit|rollback|savepoint|release|pragma)\b/i.test(q.sql));
    assert.ok(statements.length >= 20, `captured ${statements.length} statements`);
    const bad: string[] = [];
    for (const q of statements) {
      const plan = await db.kysely.executeQuery<{ detail: string }>(CompiledQuery.raw(`EXPLAIN QUERY PLAN ${q.sql}`, [...q.parameters]));
      for (const { detail } of plan.rows) {
        if (/^SCAN (chunk|nar|object|chunkref|cache)\b(?! USING)/.test(detail) || /INDEX idx-(chunk|nar)-state-holders/.test(detail)) {
          bad.push(`${detail}\n    in: ${q.sql}`);
        }
      }
    }
    assert.deepEqual(bad, []);
    // SQLite plans a statement again on every run when its LIMIT or OFFSET is a bound parameter
    // (it reads the value while planning): 75-120 µs a narinfo lookup instead of 8-10 µs
    const rebound = statements.filter((q) => /\b(limit|offset) \?/i.test(q.sql)).map((q) => q.sql);
    assert.deepEqual(rebound, []);
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
