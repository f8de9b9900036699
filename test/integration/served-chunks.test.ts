// The pages of a NAR download's chunk rows (db/queries/objects.ts servedChunkPager), on both
// engines: paged by chunkref id for speed, they must be exactly the pages by seq, also when the
// chunkrefs were inserted out of seq order; the chunks the NAR repeats are counted, and its
// chunks summed up by where they are stored.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../src/db/connect.ts";
import { migrate } from "../../src/db/migrations/index.ts";
import { claimChunks, markChunksValid } from "../../src/db/queries/chunks.ts";
import { claimNar, linkChunks } from "../../src/db/queries/nars.ts";
import { findRepeatedChunks, findServedChunks, narStorageSummary, servedChunkPager } from "../../src/db/queries/objects.ts";
import { backendsFromEnv } from "../helpers/backends.ts";
import { createDatabase } from "../helpers/postgres.ts";

const tmp = mkdtempSync(join(tmpdir(), "attic-served-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const sha = () => `sha256:${randomBytes(32).toString("hex")}`;
let n = 0;

for (const engine of [...new Set(backendsFromEnv().map((b) => b.db))]) {
  test(`${engine}: a download's pages by chunkref id are the pages by seq, chunkrefs in order or not; repeated chunks are counted`, async () => {
    const url =
      engine === "sqlite"
        ? `sqlite://${join(tmp, `${randomBytes(6).toString("hex")}.db`)}?mode=rwc`
        : await createDatabase(process.env.ATTIC_TEST_PG_URL!, `served_${randomBytes(6).toString("hex")}`);
    const db = await openDatabase(url);
    try {
      await migrate(db);
      const claims = await claimChunks(
        db,
        Array.from({ length: 20 }, () => ({ chunk_hash: sha(), chunk_size: 10, compression: "zstd", remote_file: JSON.stringify({ Local: { name: `s${++n}.chunk` } }), remote_file_id: `local:s${n}.chunk` })),
        new Date(Date.now() - 60_000),
      );
      const ids = claims.map((c) => (c as { id: number }).id);
      await markChunksValid(db, ids.map((id) => ({ id, fileHash: sha(), fileSize: 5 })));
      // 30 positions over 20 chunks: chunks 0-9 occur twice
      const sequence = [...ids, ...ids.slice(0, 10)];
      const narOf = async (order: (links: { seq: number; chunkId: number }[]) => { seq: number; chunkId: number }[]) => {
        const nar = await claimNar(db, { nar_hash: sha(), nar_size: 100, compression: "zstd", num_chunks: 0 }, { busyAfter: new Date(Date.now() - 60_000) });
        const narId = (nar as { id: number }).id;
        await linkChunks(db, narId, order(sequence.map((chunkId, seq) => ({ seq, chunkId }))));
        return narId;
      };
      const inOrder = await narOf((links) => links);
      // seqs 0-6 inserted last, and the rest backwards: ids no longer follow seqs
      const shuffled = await narOf((links) => [...links.slice(7).reverse(), ...links.slice(0, 7)]);
      for (const narId of [inOrder, shuffled]) {
        for (const limit of [4, 7, 30, 256]) {
          const pager = servedChunkPager(db, narId);
          const pages = [];
          let afterSeq = -1;
          for (;;) {
            const [ours, bySeq] = [await pager(afterSeq, limit), await findServedChunks(db, narId, afterSeq, limit)];
            assert.deepEqual(ours.map((r) => [r.seq, r.chunk?.id]), bySeq.map((r) => [r.seq, r.chunk?.id]), `NAR ${narId}, page after ${afterSeq} of ${limit}`);
            pages.push(...ours);
            if (ours.length < limit) break;
            afterSeq = ours.at(-1)!.seq;
          }
          assert.deepEqual(pages.map((r) => r.chunk?.id), sequence);
        }
        // chunks stored one per object here: no pack to check, 30 chunk rows to page
        assert.deepEqual(await narStorageSummary(db, narId), { packs: [], unpacked: 30 });
        assert.deepEqual([...(await findRepeatedChunks(db, narId))].sort((a, b) => a[0] - b[0]), ids.slice(0, 10).map((id) => [id, 2]));
      }
      // packed: chunks 0-9 in pack A (chunk i at 100 i, 5 bytes), 10-14 in pack B, 15-19 stay one per object
      const insertPack = async (name: string) =>
        Number(
          (
            await db.kysely
              .insertInto("attic_ts_pack")
              .values({ state: "V", remote_file: JSON.stringify({ Local: { name } }), remote_file_id: `local:${name}`, created_at: new Date() } as never)
              .returning("id")
              .executeTakeFirstOrThrow()
          ).id,
        );
      const [a, b] = [await insertPack(`a${n}.pack`), await insertPack(`b${n}.pack`)];
      for (const [i, id] of ids.entries()) {
        if (i < 15) await db.kysely.updateTable("chunk").set({ pack_id: i < 10 ? a : b, pack_offset: 100 * i } as never).where("id", "=", id).execute();
      }
      const summary = await narStorageSummary(db, inOrder);
      assert.deepEqual(
        { ...summary, packs: summary.packs.sort((x, y) => x.packId - y.packId).map((p) => ({ ...p, remoteFile: JSON.parse(p.remoteFile) as unknown })) },
        {
          packs: [
            { packId: a, remoteFile: { Local: { name: `a${n}.pack` } }, end: 905 },
            { packId: b, remoteFile: { Local: { name: `b${n}.pack` } }, end: 1405 },
          ],
          unpacked: 5,
        },
      );
    } finally {
      await db.close();
    }
  });
}
