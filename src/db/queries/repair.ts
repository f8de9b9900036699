// Repair (ours): what the database learns when a chunk file turns out lost or damaged (a NAR
// download found it missing, or `atticadm verify` re-read it). The representation is upstream's
// own for a chunk that has gone: the chunkrefs pointing at it become NULL, so every NAR using it
// counts as incomplete. get-missing-paths then reports the paths of those NARs, and the next push
// uploads them again (the upload pipeline already re-uploads a valid but incomplete NAR). The
// chunk row itself becomes D, so GC deletes what is left of its file and then the row.
import { transaction, type Db } from "../connect.ts";
import type { ChunkRow, NarRow } from "../schema.ts";
import { maxBatch } from "./batch.ts";
import { batches } from "../../util/concurrency.ts";
import { notIndexed } from "./plan.ts";
import { CHUNK_COLUMNS, NAR_COLUMNS, toChunkRow, toNarRow } from "./rows.ts";

/**
 * Mark these chunks lost: D, and unlinked from every NAR. Returns how many were still valid. The
 * chunk rows are updated before the chunkrefs, the order in which uploads lock them (linkChunks),
 * so the two never deadlock on PostgreSQL. An upload holding one of these chunks right now fails
 * to link it (it is no longer valid) instead of publishing a NAR that points at a lost file.
 */
export async function markChunksLost(db: Db, ids: readonly number[]): Promise<number> {
  let marked = 0;
  for (const batch of batches([...new Set(ids)], maxBatch(db))) {
    marked += await transaction(
      db,
      async (tx) => {
        const rows = await tx.kysely
          .updateTable("chunk")
          .set({ state: "D" })
          .where("id", "in", batch)
          .where(notIndexed(tx, "state"), "=", "V")
          .returning("id")
          .execute();
        await tx.kysely.updateTable("chunkref").set({ chunk_id: null }).where("chunk_id", "in", batch).execute();
        return rows.length;
      },
      { retries: 5 },
    );
  }
  return marked;
}

/**
 * Mark these NARs incomplete (their data is wrong although each chunk file matches its row):
 * every chunkref of theirs becomes NULL. Chunks no other NAR uses are then orphans for GC.
 */
export async function markNarsIncomplete(db: Db, narIds: readonly number[]): Promise<void> {
  for (const batch of batches([...new Set(narIds)], maxBatch(db))) {
    await db.kysely.updateTable("chunkref").set({ chunk_id: null }).where("nar_id", "in", batch).execute();
  }
}

/** Valid chunks with an id above `afterId`, in id order (a verify pass pages through them). */
export async function validChunksAfter(db: Db, afterId: number, limit: number, opts: { unpackedOnly?: boolean } = {}): Promise<ChunkRow[]> {
  const rows = await db.kysely
    .selectFrom("chunk")
    .select(CHUNK_COLUMNS)
    .where("id", ">", afterId)
    .where(notIndexed(db, "state"), "=", "V")
    .$if(opts.unpackedOnly === true, (q) => q.where("pack_id", "is", null))
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map(toChunkRow);
}

/** Valid, complete NARs with an id above `afterId` that some object uses, in id order. */
export async function servedNarsAfter(db: Db, afterId: number, limit: number): Promise<NarRow[]> {
  const rows = await db.kysely
    .selectFrom("nar")
    .select(NAR_COLUMNS.map((c) => `nar.${c}` as const))
    .where("nar.id", ">", afterId)
    .where(notIndexed(db, "nar.state"), "=", "V")
    .where((eb) => eb.exists(eb.selectFrom("object").select("object.id").whereRef("object.nar_id", "=", "nar.id")))
    .where((eb) =>
      eb.not(eb.exists(eb.selectFrom("chunkref").select("chunkref.id").whereRef("chunkref.nar_id", "=", "nar.id").where("chunkref.chunk_id", "is", null))),
    )
    .orderBy("nar.id")
    .limit(limit)
    .execute();
  return rows.map(toNarRow);
}

export interface AffectedPath {
  cache: string;
  storePath: string;
}

/** The store paths (with their cache) whose NAR uses one of these chunks. */
export async function pathsUsingChunks(db: Db, chunkIds: readonly number[]): Promise<AffectedPath[]> {
  const out: AffectedPath[] = [];
  for (const batch of batches([...new Set(chunkIds)], maxBatch(db))) {
    const rows = await db.kysely
      .selectFrom("object")
      .innerJoin("cache", "cache.id", "object.cache_id")
      .select(["cache.name", "object.store_path"])
      .where("object.nar_id", "in", (eb) => eb.selectFrom("chunkref").select("chunkref.nar_id").where("chunkref.chunk_id", "in", batch))
      .execute();
    out.push(...rows.map((r) => ({ cache: r.name, storePath: r.store_path })));
  }
  return out;
}

/** The store paths (with their cache) of these NARs. */
export async function pathsOfNars(db: Db, narIds: readonly number[]): Promise<AffectedPath[]> {
  const out: AffectedPath[] = [];
  for (const batch of batches([...new Set(narIds)], maxBatch(db))) {
    const rows = await db.kysely
      .selectFrom("object")
      .innerJoin("cache", "cache.id", "object.cache_id")
      .select(["cache.name", "object.store_path"])
      .where("object.nar_id", "in", batch)
      .execute();
    out.push(...rows.map((r) => ({ cache: r.name, storePath: r.store_path })));
  }
  return out;
}
