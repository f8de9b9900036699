// Queries on `cache`. Names are unique across live and soft-deleted caches, as upstream: a
// soft-deleted name stays taken until an admin purges it.
import type { Db } from "../connect.ts";
import { prepareQuery, type Placeholders } from "./prepared.ts";
import type { CacheRow } from "../schema.ts";
import { CACHE_COLUMNS, toCacheRow } from "./rows.ts";
import { maxBatch } from "./batch.ts";
import { batches } from "../../util/concurrency.ts";
import { toInt } from "../values.ts";

export interface NewCacheRow {
  name: string;
  keypair: string;
  is_public: boolean;
  store_dir: string;
  priority: number;
  upstream_cache_key_names: string;
  retention_period?: number | null;
  max_size?: number | null;
  /** default: now */
  created_at?: Date;
}

export type CachePatch = Partial<Omit<CacheRow, "id">>;

const liveCacheByName = prepareQuery((k, $: Placeholders<{ name: string }>) =>
  k.selectFrom("cache").select(CACHE_COLUMNS).where("name", "=", $.name).where("deleted_at", "is", null),
);

export async function getCacheByName(db: Db, name: string, opts: { includeDeleted?: boolean } = {}): Promise<CacheRow | null> {
  if (!opts.includeDeleted) {
    const [row] = await liveCacheByName.run(db, { name });
    return row ? toCacheRow(row) : null;
  }
  const row = await db.kysely.selectFrom("cache").select(CACHE_COLUMNS).where("name", "=", name).executeTakeFirst();
  return row ? toCacheRow(row) : null;
}

export async function getCacheById(db: Db, id: number): Promise<CacheRow | null> {
  const row = await db.kysely.selectFrom("cache").select(CACHE_COLUMNS).where("id", "=", id).executeTakeFirst();
  return row ? toCacheRow(row) : null;
}

/** False when the name is taken, by a live or a soft-deleted cache. */
export async function createCache(db: Db, row: NewCacheRow): Promise<boolean> {
  const inserted = await db.kysely
    .insertInto("cache")
    .values({
      name: row.name,
      keypair: row.keypair,
      is_public: row.is_public,
      store_dir: row.store_dir,
      priority: row.priority,
      upstream_cache_key_names: row.upstream_cache_key_names,
      created_at: row.created_at ?? new Date(),
      deleted_at: null,
      retention_period: row.retention_period ?? null,
      max_size: row.max_size ?? null,
    })
    .onConflict((oc) => oc.column("name").doNothing())
    .returning("id")
    .executeTakeFirst();
  return inserted !== undefined;
}

/** False when no live cache has this id. */
export async function updateCache(db: Db, id: number, patch: CachePatch): Promise<boolean> {
  const set: CachePatch = {};
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) (set as Record<string, unknown>)[k] = v;
  if (Object.keys(set).length === 0) return (await getCacheById(db, id))?.deleted_at === null;
  const result = await db.kysely.updateTable("cache").set(set).where("id", "=", id).where("deleted_at", "is", null).executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Marks the cache deleted; false when it was not live (a concurrent delete). */
export async function softDeleteCache(db: Db, id: number): Promise<boolean> {
  const result = await db.kysely
    .updateTable("cache")
    .set({ deleted_at: new Date() })
    .where("id", "=", id)
    .where("deleted_at", "is", null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Deletes a live cache; its objects go with it (ON DELETE CASCADE). */
export async function hardDeleteCache(db: Db, id: number): Promise<boolean> {
  const result = await db.kysely.deleteFrom("cache").where("id", "=", id).where("deleted_at", "is", null).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/** Frees the name of a soft-deleted cache for reuse (objects cascade); false when there is none. */
export async function purgeDeletedCache(db: Db, name: string): Promise<boolean> {
  const result = await db.kysely.deleteFrom("cache").where("name", "=", name).where("deleted_at", "is not", null).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function listCaches(db: Db, opts: { includeDeleted?: boolean } = {}): Promise<CacheRow[]> {
  const rows = await db.kysely
    .selectFrom("cache")
    .select(CACHE_COLUMNS)
    .$if(!opts.includeDeleted, (q) => q.where("deleted_at", "is", null))
    .orderBy("name")
    .execute();
  return rows.map(toCacheRow);
}

export interface CacheStats {
  /** objects in the cache */
  objects: number;
  /** logical size: the sum of the NAR sizes of its objects, shared NARs counted in full */
  size: number;
}

/** Object count and logical size of each cache (ours: `attic cache list`); caches without objects are absent. */
export async function cacheStats(db: Db, cacheIds: readonly number[]): Promise<Map<number, CacheStats>> {
  const stats = new Map<number, CacheStats>();
  for (const batch of batches([...cacheIds], maxBatch(db, 1) - 1)) {
    const rows = await db.kysely
      .selectFrom("object")
      .innerJoin("nar", "nar.id", "object.nar_id")
      .select((eb) => ["object.cache_id as cache_id", eb.fn.countAll<number>().as("objects"), eb.fn.sum<number>("nar.nar_size").as("size")])
      .where("object.cache_id", "in", batch)
      .groupBy("object.cache_id")
      .execute();
    for (const r of rows) stats.set(toInt(r.cache_id), { objects: toInt(r.objects), size: toInt(r.size) });
  }
  return stats;
}
