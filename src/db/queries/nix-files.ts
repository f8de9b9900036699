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

/**
 * Records that `fileName`, a NAR file `nix copy` uploaded, stands for this path of the cache, if
 * the path's NAR now is the one the file decodes to (same NarHash and NarSize): a concurrent
 * re-push that pointed the path elsewhere never gets a file name that would serve other bytes.
 */
export async function putNixFile(db: Db, row: { cacheId: number; fileName: string; storePathHash: string; narHash: string; narSize: number }): Promise<void> {
  await db.kysely
    .insertInto("attic_ts_nix_file")
    .columns(["cache_id", "file_name", "store_path_hash", "nar_id"])
    .expression((eb) =>
      eb
        .selectFrom("object")
        .innerJoin("nar", "nar.id", "object.nar_id")
        .select((s) => [s.val(row.cacheId).as("cache_id"), s.val(row.fileName).as("file_name"), "object.store_path_hash", "nar.id"])
        .where("object.cache_id", "=", row.cacheId)
        .where("object.store_path_hash", "=", row.storePathHash)
        .where("nar.nar_hash", "=", row.narHash)
        .where("nar.nar_size", "=", row.narSize)
        .where("nar.state", "=", "V"),
    )
    .onConflict((oc) => oc.columns(["cache_id", "file_name", "store_path_hash"]).doUpdateSet((eb) => ({ nar_id: eb.ref("excluded.nar_id") })))
    .execute();
}

/**
 * The store path hash a NAR file uploaded by `nix copy` stands for in a live cache, if that path
 * is still there with the NAR the file decodes to; null otherwise.
 */
export async function findNixFile(db: Db, cacheName: string, fileName: string): Promise<{ storePathHash: string; narId: number } | null> {
  const row = await db.kysely
    .selectFrom("attic_ts_nix_file as f")
    .innerJoin("cache", "cache.id", "f.cache_id")
    .innerJoin("object", (join) =>
      join.onRef("object.cache_id", "=", "f.cache_id").onRef("object.store_path_hash", "=", "f.store_path_hash").onRef("object.nar_id", "=", "f.nar_id"),
    )
    .select(["f.store_path_hash", "f.nar_id"])
    .where("cache.name", "=", cacheName)
    .where("cache.deleted_at", "is", null)
    .where("f.file_name", "=", fileName)
    .limit(1)
    .executeTakeFirst();
  return row ? { storePathHash: row.store_path_hash, narId: Number(row.nar_id) } : null;
}
