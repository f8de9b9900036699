// Compaction of packs (docs/compaction.md) against real storage and both database engines: a store
// written one object per chunk (today's layout: the server runs with `storage.packs = false`, and
// the collector is told to pack) is packed by a run; a third of its paths deleted,
// the next run rewrites the packs with holes and deletes the old ones after the grace period; a
// run interrupted at each step (before the new pack is durable, after, after the commit) loses no
// chunk and the next run leaves nothing behind. Every step is checked by `atticadm verify`'s
// logic (each frame re-read and hashed) and against the objects in storage.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { backendName, backendsFromEnv, createCacheViaApi, startServer, type TestServer } from "../helpers/server.ts";
import { narFixture, seededBytes, uploadNar, type NarFixture } from "../helpers/nar.ts";
import { runGarbageCollectionOnce, type GcConfig } from "../../src/gc/index.ts";
import type { CompactionConfig } from "../../src/gc/compact.ts";
import { verifyStorage } from "../../src/admin/repair/verify.ts";
import { unpackAll } from "../../src/admin/repair/unpack.ts";
import { decompressWithCli } from "../helpers/decompress.ts";
import { expectedNames as expectedNamesOf, packStates as packStatesOf, storedNames as storedNamesOf } from "../helpers/pack-store.ts";

const KiB = 1024;
const COMPACTION: CompactionConfig = { threshold: 0.01, maxRewriteBytes: 2 ** 30, packSize: 256 * KiB, retiredGraceMs: 0, packLoose: true };
const gc = (compaction: Partial<CompactionConfig> = {}): GcConfig => ({
  defaultRetentionPeriod: 0,
  staleGracePeriod: 3600,
  maxSize: null,
  compaction: { ...COMPACTION, ...compaction },
});

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "s3" },
]);

const storedNames = (s: TestServer) => storedNamesOf(s.config, s.dir);
const expectedNames = (s: TestServer) => expectedNamesOf(s.db);
const packStates = (s: TestServer) => packStatesOf(s.db);

async function verifyClean(s: TestServer): Promise<void> {
  const lines: string[] = [];
  const r = await verifyStorage({ db: s.db, storage: s.storage }, { quick: false, nars: false, repair: false }, (l) => lines.push(l));
  assert.equal(r.brokenChunks, 0, lines.join("\n"));
}

async function liveBytes(s: TestServer): Promise<number> {
  const rows = await s.db.kysely.selectFrom("chunk").select("file_size").where("state", "=", "V").execute();
  return rows.reduce((sum, r) => sum + (r.file_size ?? 0), 0);
}

async function packBytes(s: TestServer): Promise<number> {
  const rows = await s.db.kysely.selectFrom("attic_ts_pack").select("size").where("state", "=", "V").execute();
  return rows.reduce((sum, r) => sum + Number(r.size), 0);
}

async function pushAll(s: TestServer, cache: string, n: number, seed: number): Promise<NarFixture[]> {
  const fxs: NarFixture[] = [];
  for (let i = 0; i < n; i++) {
    const fx = narFixture(seededBytes(200_000 + i * 1000, seed + i), `p${i}`);
    const res = await uploadNar(s, fx, { cache, token: s.rootToken() });
    assert.equal(res.status, 200, await res.text());
    fxs.push(fx);
  }
  return fxs;
}

async function deletePaths(s: TestServer, cache: string, fxs: NarFixture[]): Promise<void> {
  const res = await s.fetch("/_api/v1/delete-paths", {
    method: "POST",
    token: s.rootToken(),
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ cache, store_path_hashes: fxs.map((f) => f.storePathHash) }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** Each path's NAR as served now is its NAR, byte for byte once decompressed (the zstd CLI, an independent decoder). */
async function servedIntact(s: TestServer, cache: string, fxs: NarFixture[]): Promise<void> {
  for (const fx of fxs) {
    const res = await s.fetch(`/${cache}/nar/${fx.storePathHash}.nar`, { token: s.rootToken() });
    assert.equal(res.status, 200, fx.storePathHash);
    assert.ok((await decompressWithCli("zstd", Buffer.from(await res.arrayBuffer()))).equals(fx.nar), fx.storePathHash);
  }
}

const chunking = { threshold: 1, min: 16384, avg: 65536, max: 262144 };
/** pushes write one object per chunk (the layout before packs, and upstream's); compaction packs them */
const TODAYS_LAYOUT = "packs = false";

for (const backend of backends) {
  describe(`compaction (${backendName(backend)})`, () => {
    test("today's layout is packed, a third deleted is compacted away, old packs go after the grace period", async () => {
      const s = await startServer({ backend, chunking, storageExtra: TODAYS_LAYOUT });
      try {
        await createCacheViaApi(s, "c");
        const fxs = await pushAll(s, "c", 9, 100);
        const loose = await s.db.kysely.selectFrom("chunk").select("id").where("state", "=", "V").execute();
        assert.ok(loose.length >= 18, `${loose.length} chunks`);
        await servedIntact(s, "c", fxs);

        // 1. packed: every chunk moves into packs of at most 256 KiB; the objects of their own go at once (grace 0)
        const packed = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: gc() });
        assert.equal(packed.compaction.looseChunksPacked, loose.length);
        assert.equal(packed.compaction.failures, 0);
        assert.equal((await s.db.kysely.selectFrom("chunk").select("id").where("pack_id", "is", null).execute()).length, 0);
        const states = await packStates(s);
        assert.ok((states.V ?? 0) >= 4, JSON.stringify(states));
        assert.equal(states.R, undefined, "retired objects deleted with a grace of 0");
        assert.deepEqual(await storedNames(s), await expectedNames(s));
        assert.ok((await storedNames(s)).every((n) => n.endsWith(".pack")));
        assert.equal(await packBytes(s), await liveBytes(s));
        await verifyClean(s);
        await servedIntact(s, "c", fxs);

        // 2. a third of the paths deleted: with a grace period the rewritten packs stay until it has passed
        await deletePaths(s, "c", fxs.slice(0, 3));
        const before = await packBytes(s);
        const compacted = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: gc({ retiredGraceMs: 3600_000 }) });
        assert.ok(compacted.chunks > 0);
        assert.ok(compacted.compaction.packsRewritten + compacted.compaction.packsDropped > 0, JSON.stringify(compacted.compaction));
        assert.equal(compacted.compaction.packsDeleted, 0, "the grace period keeps them");
        assert.equal(await packBytes(s), await liveBytes(s), "every hole is gone from the sealed packs");
        assert.ok(await packBytes(s) < before);
        const retired = (await packStates(s)).R ?? 0;
        assert.ok(retired > 0);
        assert.deepEqual(await storedNames(s), await expectedNames(s));
        await verifyClean(s);
        await servedIntact(s, "c", fxs.slice(3));

        // 3. past the grace period the retired packs are deleted
        const later = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: gc({ retiredGraceMs: 3600_000 }), now: () => new Date(Date.now() + 3601_000) });
        assert.equal(later.compaction.packsDeleted, retired);
        assert.equal((await packStates(s)).R, undefined);
        assert.deepEqual(await storedNames(s), await expectedNames(s));
        await verifyClean(s);
        await servedIntact(s, "c", fxs.slice(3));
      } finally {
        await s.stop();
      }
    });

    test("/metrics and the dashboard's server page show packs, their free space and what compaction reclaims", async () => {
      const s = await startServer({ backend, chunking, storageExtra: TODAYS_LAYOUT });
      try {
        await createCacheViaApi(s, "c");
        const fxs = await pushAll(s, "c", 6, 400);
        // packs of 1 MiB: each holds chunks of several paths
        await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: gc({ packSize: 1024 * KiB }) });
        await deletePaths(s, "c", fxs.slice(0, 2));
        // chunks die but no pack is rewritten (a threshold of 100 %); wholly dead packs are retired, kept for an hour
        await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: gc({ threshold: 1, retiredGraceMs: 3600_000 }) });
        const sealed = await packBytes(s);
        const free = sealed - (await liveBytes(s));
        assert.ok(free > 0);
        const states = await packStates(s);

        const text = await (await s.fetch("/metrics")).text();
        const metric = (name: string) => Number(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, "m").exec(text)?.[1]);
        assert.equal(metric('attic_packs{state="sealed"}'), states.V);
        assert.equal(metric('attic_packs{state="retired"}'), states.R ?? 0);
        assert.equal(metric("attic_pack_bytes"), sealed);
        assert.equal(metric("attic_pack_free_bytes"), free);
        assert.ok(metric("attic_pack_reclaimable_bytes") >= free, text);

        const page = await (await s.fetch("/_dashboard/server?fragment=1", { token: s.rootToken() })).text();
        const shown = (name: string) => new RegExp(`data-figure="${name}" data-value="(\\d+)"`).exec(page)?.[1];
        assert.equal(shown("packs"), String(states.V));
        assert.equal(shown("pack-free-bytes"), String(free));
        assert.equal(shown("retired-packs"), String(states.R ?? 0));
      } finally {
        await s.stop();
      }
    });

    test("the way back: unpack puts every chunk in an object of its own, and the store serves one object per chunk", async () => {
      const s = await startServer({ backend, chunking, storageExtra: TODAYS_LAYOUT });
      try {
        await createCacheViaApi(s, "c");
        const fxs = await pushAll(s, "c", 5, 300);
        const loose = await expectedNames(s);
        await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: gc() });
        await deletePaths(s, "c", fxs.slice(0, 1));
        // a rewrite with a grace period: retired packs are still there when unpack runs
        await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: gc({ retiredGraceMs: 3600_000 }) });
        assert.ok((await storedNames(s)).every((n) => n.endsWith(".pack")));

        const lines: string[] = [];
        const r = await unpackAll({ db: s.db, storage: s.storage }, { deleteNow: true }, (l) => lines.push(l));
        assert.ok(r, "the lease was free");
        assert.equal(r.failures, 0, lines.join("\n"));
        assert.equal(r.leftValid + r.leftPending, 0);
        assert.ok(r.chunks > 0 && r.packsDeleted > 0, JSON.stringify(r));
        assert.deepEqual(await s.db.kysely.selectFrom("attic_ts_pack").select("id").execute(), []);
        assert.equal((await s.db.kysely.selectFrom("chunk").select("id").where("pack_id", "is not", null).execute()).length, 0);
        // upstream's layout: one object per valid chunk, under the name its row gave it from the start
        const names = await storedNames(s);
        assert.deepEqual(names, await expectedNames(s));
        assert.ok(names.every((n) => n.endsWith(".chunk")));
        assert.ok(names.every((n) => loose.includes(n)), "the names the chunks had before they were packed");
        await verifyClean(s);
        // served as upstream serves it: each chunk read from its own object
        for (const fx of fxs.slice(1)) {
          const res = await s.fetch(`/c/nar/${fx.storePathHash}.nar`, { token: s.rootToken() });
          assert.equal(res.status, 200);
          assert.ok((await decompressWithCli("zstd", Buffer.from(await res.arrayBuffer()))).equals(fx.nar));
        }
        // a second run has nothing to do
        const again = await unpackAll({ db: s.db, storage: s.storage }, { deleteNow: true }, () => {});
        assert.equal(again?.chunks, 0);
      } finally {
        await s.stop();
      }
    });

    for (const step of ["copied", "durable", "committed"] as const) {
      test(`a run interrupted ${step === "copied" ? "while writing a new pack" : step === "durable" ? "once the new pack is durable" : "after the commit"}: nothing lost, nothing left after the next run`, async () => {
        const s = await startServer({ backend, chunking, storageExtra: TODAYS_LAYOUT });
        try {
          await createCacheViaApi(s, "c");
          const fxs = await pushAll(s, "c", 6, 200);
          await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: gc() });
          await deletePaths(s, "c", fxs.slice(0, 2));
          const crash = new Error("killed (test)");
          let steps = 0;
          await assert.rejects(
            runGarbageCollectionOnce({
              db: s.db,
              storage: s.storage,
              config: gc(),
              onCompactionStep: (at) => {
                if (at === step && ++steps === 1) throw crash;
              },
            }),
            (err) => err === crash,
          );
          await verifyClean(s);
          if (step !== "committed") assert.ok(((await packStates(s)).C ?? 0) <= 1);

          const next = await runGarbageCollectionOnce({ db: s.db, storage: s.storage, config: gc() });
          assert.equal(next.compaction.failures, 0);
          const states = await packStates(s);
          assert.equal(states.C, undefined, "the interrupted pack is gone");
          assert.equal(states.R, undefined);
          assert.equal(await packBytes(s), await liveBytes(s));
          assert.deepEqual(await storedNames(s), await expectedNames(s));
          await verifyClean(s);
        } finally {
          await s.stop();
        }
      });
    }
  });
}
