// The garbage collector's takeover of open packs whose writer is gone (docs/packs.md, "A writer
// that died"), at the level of the queries, on both engines: a pack whose lease lives is left
// open; once the lease ran out it is sealed at the end of its last valid chunk, or marked for
// removal when no chunk names it; and a writer that lost its pack so can no longer turn chunks
// valid in it beyond that end, while chunks inside it still may.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { backendName, backendsFromEnv, startServer } from "../helpers/server.ts";
import { insertPack, markPackedChunksValid } from "../../src/db/queries/packs.ts";
import { abandonedOpenPacks, takeOverOpenPack } from "../../src/db/queries/pack-gc.ts";
import type { Db } from "../../src/db/connect.ts";
import { leasedPackHooks } from "../../src/server/upload/pack-leases.ts";

const backends = backendsFromEnv([
  { db: "sqlite", storage: "local" },
  { db: "postgres", storage: "s3" },
]);

async function pendingChunk(db: Db): Promise<number> {
  const now = new Date();
  const row = await db.kysely
    .insertInto("chunk")
    .values({
      state: "P",
      chunk_hash: `sha256:${randomUUID().replaceAll("-", "")}`,
      chunk_size: 100,
      file_hash: null,
      file_size: null,
      compression: "zstd",
      remote_file: JSON.stringify({ Local: { name: `${randomUUID()}.chunk` } }),
      remote_file_id: `local:${randomUUID()}.chunk`,
      holders_count: 1,
      created_at: now,
      held_at: now,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return Number(row.id);
}

async function openPack(db: Db, ttlMs: number): Promise<number> {
  const name = `${randomUUID()}.pack`;
  return insertPack(db, { remote_file: JSON.stringify({ Local: { name } }), remote_file_id: `local:${name}` }, { owner: randomUUID(), ttlMs });
}

const valid = (id: number, packId: number, packOffset: number) => ({ id, fileHash: `sha256:${"a".repeat(64)}`, fileSize: 100, packId, packOffset });

for (const backend of backends) {
  describe(`open packs of a writer that is gone (${backendName(backend)})`, () => {
    test("a live lease keeps a pack open; once it ran out the pack is sealed at its last valid chunk, or marked for removal when empty", async () => {
      const s = await startServer({ backend });
      try {
        const db = s.db;
        const alive = await openPack(db, 60_000);
        const full = await openPack(db, 60_000);
        const empty = await openPack(db, 60_000);
        const [a, b, late, inside] = [await pendingChunk(db), await pendingChunk(db), await pendingChunk(db), await pendingChunk(db)];
        await markPackedChunksValid(db, [valid(a, full, 0), valid(b, full, 300)]);
        assert.deepEqual(await abandonedOpenPacks(db, new Date(), undefined), [], "every lease lives");

        // the leases of two packs run out (their atticd is gone)
        await db.kysely.updateTable("attic_ts_lease").set({ expires_at: new Date(0) }).where("name", "in", [`pack:${full}`, `pack:${empty}`]).execute();
        assert.deepEqual(await abandonedOpenPacks(db, new Date(), undefined), [full, empty]);
        assert.equal(await takeOverOpenPack(db, alive, new Date()), "alive");
        assert.equal(await takeOverOpenPack(db, full, new Date()), "sealed");
        assert.equal(await takeOverOpenPack(db, empty, new Date()), "empty");
        assert.equal(await takeOverOpenPack(db, full, new Date()), "gone", "taken over once");

        const packs = await db.kysely.selectFrom("attic_ts_pack").select(["id", "state", "size", "chunks"]).where("id", "in", [alive, full, empty]).orderBy("id").execute();
        assert.deepEqual(
          packs.map((p) => [Number(p.id), p.state.trim(), Number(p.size), Number(p.chunks)]),
          [[alive, "P", 0, 0], [full, "V", 400, 2], [empty, "D", 0, 0]],
        );
        assert.equal((await db.kysely.selectFrom("attic_ts_lease").select("name").where("name", "in", [`pack:${full}`, `pack:${empty}`]).execute()).length, 0);

        // the writer that lost them: past the sealed end, or into the removed pack, nothing turns valid; inside the sealed end it still may
        await assert.rejects(markPackedChunksValid(db, [valid(late, full, 400)]), /no longer open/);
        await assert.rejects(markPackedChunksValid(db, [valid(late, empty, 0)]), /no longer open/);
        await markPackedChunksValid(db, [valid(inside, full, 100)]);
        await markPackedChunksValid(db, [valid(late, alive, 0)]);
        const states = await db.kysely.selectFrom("chunk").select(["id", "state"]).where("id", "in", [late, inside]).orderBy("id").execute();
        assert.deepEqual(states.map((r) => r.state.trim()), ["V", "V"]);

        // a pack opened without a lease (an older atticd) counts as abandoned only past the stale grace period
        const name = `${randomUUID()}.pack`;
        const old = await insertPack(db, { remote_file: JSON.stringify({ Local: { name } }), remote_file_id: `local:${name}` });
        assert.deepEqual(await abandonedOpenPacks(db, new Date(), new Date(Date.now() - 3600_000)), []);
        assert.deepEqual(await abandonedOpenPacks(db, new Date(), new Date(Date.now() + 1000)), [old]);
        // ... and none of its chunks was claimed within that period (such a writer may still be appending)
        const hourAgo = new Date(Date.now() - 3600_000);
        await db.kysely.updateTable("attic_ts_pack").set({ created_at: new Date(Date.now() - 7200_000) }).where("id", "=", old).execute();
        const recent = await pendingChunk(db);
        await markPackedChunksValid(db, [valid(recent, old, 0)]);
        assert.deepEqual(await abandonedOpenPacks(db, new Date(), hourAgo), []);
        await db.kysely.updateTable("chunk").set({ created_at: new Date(Date.now() - 7200_000) }).where("id", "=", recent).execute();
        assert.deepEqual(await abandonedOpenPacks(db, new Date(), hourAgo), [old]);
      } finally {
        await s.stop();
      }
    });

    test("an atticd's pack hooks keep the leases of its open packs alive, and release them when a pack is sealed or discarded", async () => {
      const s = await startServer({ backend });
      try {
        const db = s.db;
        const hooks = leasedPackHooks(db, 300);
        const pack = (name: string) => ({ remoteFile: { Local: { name } }, remoteFileId: `local:${name}` });
        const [a, b] = [await hooks.open(pack(`${randomUUID()}.pack`)), await hooks.open(pack(`${randomUUID()}.pack`))];
        // three TTLs later both leases still live: renewed
        await new Promise((r) => setTimeout(r, 900));
        assert.deepEqual(await abandonedOpenPacks(db, new Date(), undefined), []);
        await hooks.sealed(a, 10, 1);
        await hooks.discarded(b);
        const leases = await db.kysely.selectFrom("attic_ts_lease").select("name").where("name", "in", [`pack:${a}`, `pack:${b}`]).execute();
        assert.deepEqual(leases, []);
        const rows = await db.kysely.selectFrom("attic_ts_pack").select(["id", "state"]).where("id", "in", [a, b]).execute();
        assert.deepEqual(rows.map((r) => [Number(r.id), r.state.trim()]), [[a, "V"]]);
      } finally {
        await s.stop();
      }
    });
  });
}
