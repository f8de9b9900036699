// Queries on Nix's binary-cache files besides narinfo and NAR (ours, issue 17): build logs and
// realisations per cache, listings per NAR. A PUT of the same name replaces the row, as a PUT
// replaces a file in a file:// or S3 cache.
import type { Db } from "../connect.ts";

export async function putBuildLog(db: Db, row: { cacheId: number; drv: string; size: number; data: Buffer }): Promise<void> {
  await db.kysely
    .insertInto("attic_ts_build_log")
    .values({ cache_id: row.cacheId, drv: row.drv, size: row.size, data: row.data, created_at: new Date() })
    .onConflict((oc) => oc.columns(["cache_id", "drv"]).doUpdateSet({ size: row.size, data: row.data, created_at: new Date() }))
    .execute();
}

export async function getBuildLog(db: Db, cacheId: number, drv: string): Promise<Buffer | null> {
  const row = await db.kysely.selectFrom("attic_ts_build_log").select("data").where("cache_id", "=", cacheId).where("drv", "=", drv).executeTakeFirst();
  return row ? Buffer.from(row.data) : null;
}

export async function putRealisation(db: Db, row: { cacheId: number; outputId: string; content: string }): Promise<void> {
  await db.kysely
    .insertInto("attic_ts_realisation")
    .values({ cache_id: row.cacheId, output_id: row.outputId, content: row.content, created_at: new Date() })
    .onConflict((oc) => oc.columns(["cache_id", "output_id"]).doUpdateSet({ content: row.content, created_at: new Date() }))
    .execute();
}

export async function getRealisation(db: Db, cacheId: number, outputId: string): Promise<string | null> {
  const row = await db.kysely
    .selectFrom("attic_ts_realisation")
    .select("content")
    .where("cache_id", "=", cacheId)
    .where("output_id", "=", outputId)
    .executeTakeFirst();
  return row?.content ?? null;
}

/** Sets the NAR's listing unless it has one (a listing follows from the NAR: any one is right). */
export async function putNarListing(db: Db, narId: number, data: Buffer): Promise<void> {
  await db.kysely.insertInto("attic_ts_nar_listing").values({ nar_id: narId, data }).onConflict((oc) => oc.column("nar_id").doNothing()).execute();
}

export async function getNarListing(db: Db, narId: number): Promise<Buffer | null> {
  const row = await db.kysely.selectFrom("attic_ts_nar_listing").select("data").where("nar_id", "=", narId).executeTakeFirst();
  return row ? Buffer.from(row.data) : null;
}

/** Removes the build logs and realisations of soft-deleted caches (their objects go the same way). */
export async function deleteNixFilesOfDeletedCaches(db: Db): Promise<number> {
  const deleted = db.kysely.selectFrom("cache").select("id").where("deleted_at", "is not", null);
  const logs = await db.kysely.deleteFrom("attic_ts_build_log").where("cache_id", "in", deleted).executeTakeFirst();
  const realisations = await db.kysely.deleteFrom("attic_ts_realisation").where("cache_id", "in", deleted).executeTakeFirst();
  return Number(logs.numDeletedRows) + Number(realisations.numDeletedRows);
}
