// Queries on `object`: the hot narinfo/NAR lookups, get-missing-paths and the upsert at the end
// of an upload.
import type { Db } from "../connect.ts";
import type { CacheRow, ChunkRow, NarRow, ObjectRow } from "../schema.ts";
import { maxBatch } from "./batch.ts";
import {
  CACHE_COLUMNS,
  CHUNK_COLUMNS,
  NAR_COLUMNS,
  OBJECT_COLUMNS,
  prefixed,
  toCacheRow,
  toChunkRow,
  toNarRow,
  toObjectRow,
  unprefix,
} from "./rows.ts";

export interface NarinfoMatch {
  object: ObjectRow;
  cache: CacheRow;
  nar: NarRow;
}

/** The object with this store path hash in a live cache, with its cache and valid NAR; one query. */
export async function findObjectForNarinfo(db: Db, cacheName: string, storePathHash: string): Promise<NarinfoMatch | null> {
  const raw = await db.kysely
    .selectFrom("object")
    .innerJoin("cache", "cache.id", "object.cache_id")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .select([...prefixed("object", OBJECT_COLUMNS, "o_"), ...prefixed("cache", CACHE_COLUMNS, "c_"), ...prefixed("nar", NAR_COLUMNS, "n_")])
    .where("cache.name", "=", cacheName)
    .where("cache.deleted_at", "is", null)
    .where("object.store_path_hash", "=", storePathHash)
    .where("nar.state", "=", "V")
    .limit(1)
    .executeTakeFirst();
  if (!raw) return null;
  const row = raw as Record<string, unknown>;
  return { object: toObjectRow(unprefix(row, "o_")!), cache: toCacheRow(unprefix(row, "c_")!), nar: toNarRow(unprefix(row, "n_")!) };
}

export interface NarChunk {
  seq: number;
  /** null when the chunk is gone or not valid: the NAR is incomplete */
  chunk: ChunkRow | null;
}

/** How many chunks a NAR links, how many of them are valid, and their stored size in total. */
export interface NarChunkSummary {
  refs: number;
  present: number;
  /** sum of the valid chunks' file sizes; null when one of them has no recorded size */
  fileSize: number | null;
}

/** One aggregate query: enough to answer 503 IncompleteNar or set Content-Length before streaming. */
export async function narChunkSummary(db: Db, narId: number): Promise<NarChunkSummary> {
  const row = await db.kysely
    .selectFrom("chunkref")
    .leftJoin("chunk", (join) => join.onRef("chunk.id", "=", "chunkref.chunk_id").on("chunk.state", "=", "V"))
    .select((eb) => [
      eb.fn.countAll().as("refs"),
      eb.fn.count("chunk.id").as("present"),
      eb.fn.count("chunk.file_size").as("sized"),
      eb.fn.sum("chunk.file_size").as("total"),
    ])
    .where("chunkref.nar_id", "=", narId)
    .executeTakeFirstOrThrow();
  const refs = Number(row.refs);
  const present = Number(row.present);
  return { refs, present, fileSize: Number(row.sized) === refs ? Number(row.total ?? 0) : null };
}

/**
 * The NAR's chunks in order, a page at a time (seq > `afterSeq`, at most `limit`): a 4 GiB NAR
 * has some 65,000 chunks, which a download walks through without holding all their rows.
 */
export async function findNarChunks(db: Db, narId: number, page: { afterSeq?: number; limit?: number } = {}): Promise<NarChunk[]> {
  const rows = await db.kysely
    .selectFrom("chunkref")
    .leftJoin("chunk", (join) => join.onRef("chunk.id", "=", "chunkref.chunk_id").on("chunk.state", "=", "V"))
    .select(["chunkref.seq as seq", ...prefixed("chunk", CHUNK_COLUMNS, "k_")])
    .where("chunkref.nar_id", "=", narId)
    .$if(page.afterSeq !== undefined, (q) => q.where("chunkref.seq", ">", page.afterSeq!))
    .orderBy("chunkref.seq")
    .$if(page.limit !== undefined, (q) => q.limit(page.limit!))
    .execute();
  return rows.map((raw) => {
    const r = raw as Record<string, unknown>;
    const chunk = unprefix(r, "k_");
    return { seq: Number(r.seq), chunk: chunk ? toChunkRow(chunk) : null };
  });
}

/** The hashes (deduplicated, any order) that the cache does not hold as a servable object. */
export async function getMissingPaths(db: Db, cacheName: string, hashes: readonly string[]): Promise<string[]> {
  const wanted = [...new Set(hashes)];
  const present = new Set<string>();
  const size = maxBatch(db, 1);
  for (let i = 0; i < wanted.length; i += size) {
    const batch = wanted.slice(i, i + size);
    const rows = await db.kysely
      .selectFrom("object")
      .innerJoin("cache", "cache.id", "object.cache_id")
      .innerJoin("nar", "nar.id", "object.nar_id")
      .select("object.store_path_hash")
      .where("cache.name", "=", cacheName)
      .where("cache.deleted_at", "is", null)
      .where("nar.state", "=", "V")
      .where("object.store_path_hash", "in", batch)
      .execute();
    for (const r of rows) present.add(r.store_path_hash);
  }
  return wanted.filter((h) => !present.has(h));
}

export interface UpsertObjectRow {
  cache_id: number;
  nar_id: number;
  store_path_hash: string;
  store_path: string;
  /** JSON array */
  references: string;
  system?: string | null;
  deriver?: string | null;
  /** JSON array */
  sigs: string;
  ca?: string | null;
  created_by?: string | null;
  /** default: now */
  created_at?: Date;
}

/**
 * Insert the object, or replace the metadata of the same path in the same cache: a re-push
 * points it at the new NAR, sets created_at to now and clears last_accessed_at (upstream #132).
 */
export async function upsertObject(db: Db, row: UpsertObjectRow): Promise<number> {
  const inserted = await db.kysely
    .insertInto("object")
    .values({
      cache_id: row.cache_id,
      nar_id: row.nar_id,
      store_path_hash: row.store_path_hash,
      store_path: row.store_path,
      references: row.references,
      system: row.system ?? null,
      deriver: row.deriver ?? null,
      sigs: row.sigs,
      ca: row.ca ?? null,
      created_at: row.created_at ?? new Date(),
      last_accessed_at: null,
      created_by: row.created_by ?? null,
    })
    .onConflict((oc) =>
      oc.columns(["cache_id", "store_path_hash"]).doUpdateSet((eb) => ({
        nar_id: eb.ref("excluded.nar_id"),
        store_path: eb.ref("excluded.store_path"),
        references: eb.ref("excluded.references"),
        system: eb.ref("excluded.system"),
        deriver: eb.ref("excluded.deriver"),
        sigs: eb.ref("excluded.sigs"),
        ca: eb.ref("excluded.ca"),
        created_at: eb.ref("excluded.created_at"),
        last_accessed_at: eb.ref("excluded.last_accessed_at"),
        created_by: eb.ref("excluded.created_by"),
      })),
    )
    .returning("id")
    .executeTakeFirstOrThrow();
  return inserted.id;
}

/** A NAR download counts as a use (retention and LRU quota); narinfo requests do not. */
export async function bumpLastAccessed(db: Db, objectId: number): Promise<void> {
  await db.kysely.updateTable("object").set({ last_accessed_at: new Date() }).where("id", "=", objectId).execute();
}

export async function getObject(db: Db, cacheId: number, storePathHash: string): Promise<ObjectRow | null> {
  const row = await db.kysely
    .selectFrom("object")
    .select(OBJECT_COLUMNS)
    .where("cache_id", "=", cacheId)
    .where("store_path_hash", "=", storePathHash)
    .executeTakeFirst();
  return row ? toObjectRow(row) : null;
}
