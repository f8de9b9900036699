// The dashboard's aggregates (issue 19), written where the data changes so that a page view
// reads a few rows instead of scanning objects and chunks:
//   - a push raises its cache's row in attic_ts_cache_stats and its day in attic_ts_daily, in
//     the transaction that publishes the object;
//   - a NAR download raises its day (and object.download_count, in bumpLastAccessed);
//   - each GC run recomputes every cache's row exactly (deletions, and anything else that changed
//     objects without going through a push, are accounted there) and records itself in
//     attic_ts_gc_run with the server-wide totals it found.
// "Stored" bytes of a NAR are the compressed sizes of its chunks, one per chunkref: what the NAR
// would take on its own. Deduplication across NARs shows in the server-wide figures.
import { sql } from "kysely";
import type { Db } from "../connect.ts";
import { toInt } from "../values.ts";

/** The UTC day of a moment, `YYYY-MM-DD`: the key of attic_ts_daily. */
export function utcDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** Compressed size of a valid NAR: the file sizes of its chunks, one per chunkref. */
export async function narStoredBytes(db: Db, narId: number): Promise<number> {
  const row = await db.kysely
    .selectFrom("chunkref")
    .innerJoin("chunk", "chunk.id", "chunkref.chunk_id")
    .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("chunk.file_size"), sql<number>`0`).as("bytes"))
    .where("chunkref.nar_id", "=", narId)
    .executeTakeFirstOrThrow();
  return toInt(row.bytes);
}

/** The object a push is about to replace (same cache and path), with what it counted for. */
export async function objectBeingReplaced(db: Db, cacheId: number, storePathHash: string): Promise<{ narSize: number; narId: number } | null> {
  const row = await db.kysely
    .selectFrom("object")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .select(["nar.id as nar_id", "nar.nar_size as nar_size"])
    .where("object.cache_id", "=", cacheId)
    .where("object.store_path_hash", "=", storePathHash)
    .executeTakeFirst();
  return row ? { narId: toInt(row.nar_id), narSize: toInt(row.nar_size) } : null;
}

export interface PushFigures {
  cacheId: number;
  storePathHash: string;
  narId: number;
  narSize: number;
  /** the NAR's compressed size (narStoredBytes) */
  storedBytes: number;
  /** uncompressed bytes of the chunks this push stored anew (0 when deduplicated) */
  newChunkBytes: number;
  /** their compressed size */
  newFileBytes: number;
  now?: Date;
}

/**
 * Count a push. Call it inside the transaction that upserts the object, BEFORE the upsert (it
 * looks for the object being replaced, whose figures it takes back).
 */
export async function recordPush(tx: Db, p: PushFigures): Promise<void> {
  const now = p.now ?? new Date();
  const previous = await objectBeingReplaced(tx, p.cacheId, p.storePathHash);
  const previousStored = previous ? (previous.narId === p.narId ? p.storedBytes : await narStoredBytes(tx, previous.narId)) : 0;
  const delta = {
    objects: previous ? 0 : 1,
    logical_bytes: p.narSize - (previous?.narSize ?? 0),
    stored_bytes: p.storedBytes - previousStored,
  };
  await tx.kysely
    .insertInto("attic_ts_cache_stats")
    .values({ cache_id: p.cacheId, ...delta, updated_at: now })
    .onConflict((oc) =>
      oc.column("cache_id").doUpdateSet((eb) => ({
        objects: eb("attic_ts_cache_stats.objects", "+", eb.ref("excluded.objects")),
        logical_bytes: eb("attic_ts_cache_stats.logical_bytes", "+", eb.ref("excluded.logical_bytes")),
        stored_bytes: eb("attic_ts_cache_stats.stored_bytes", "+", eb.ref("excluded.stored_bytes")),
        updated_at: eb.ref("excluded.updated_at"),
      })),
    )
    .execute();
  const size = (column: "logical_bytes" | "stored_bytes") =>
    tx.kysely.selectFrom("attic_ts_cache_stats").select(column).where("cache_id", "=", p.cacheId);
  await tx.kysely
    .insertInto("attic_ts_daily")
    .values((eb) => ({
      cache_id: p.cacheId,
      day: utcDay(now),
      pushes: 1,
      pushed_bytes: p.narSize,
      new_chunk_bytes: p.newChunkBytes,
      new_file_bytes: p.newFileBytes,
      logical_bytes: eb.selectFrom("attic_ts_cache_stats").select("logical_bytes").where("cache_id", "=", p.cacheId),
      stored_bytes: eb.selectFrom("attic_ts_cache_stats").select("stored_bytes").where("cache_id", "=", p.cacheId),
    }))
    .onConflict((oc) =>
      oc.columns(["cache_id", "day"]).doUpdateSet((eb) => ({
        pushes: eb("attic_ts_daily.pushes", "+", 1),
        pushed_bytes: eb("attic_ts_daily.pushed_bytes", "+", eb.ref("excluded.pushed_bytes")),
        new_chunk_bytes: eb("attic_ts_daily.new_chunk_bytes", "+", eb.ref("excluded.new_chunk_bytes")),
        new_file_bytes: eb("attic_ts_daily.new_file_bytes", "+", eb.ref("excluded.new_file_bytes")),
        logical_bytes: size("logical_bytes"),
        stored_bytes: size("stored_bytes"),
      })),
    )
    .execute();
}

/** Count a NAR download on its cache's day (the path's own count is raised by bumpLastAccessed). */
export async function recordDownload(db: Db, cacheId: number, narSize: number, now = new Date()): Promise<void> {
  await db.kysely
    .insertInto("attic_ts_daily")
    .values({ cache_id: cacheId, day: utcDay(now), downloads: 1, downloaded_bytes: narSize })
    .onConflict((oc) =>
      oc.columns(["cache_id", "day"]).doUpdateSet((eb) => ({
        downloads: eb("attic_ts_daily.downloads", "+", 1),
        downloaded_bytes: eb("attic_ts_daily.downloaded_bytes", "+", eb.ref("excluded.downloaded_bytes")),
      })),
    )
    .execute();
}

interface CacheTotals {
  cacheId: number;
  objects: number;
  logicalBytes: number;
  storedBytes: number;
}

/** Every live or soft-deleted cache's exact figures, from objects, NARs and chunks (a scan: GC and migrations only). */
async function computeCacheTotals(db: Db): Promise<CacheTotals[]> {
  const narStored = db.kysely
    .selectFrom("chunkref")
    .innerJoin("chunk", "chunk.id", "chunkref.chunk_id")
    .select((eb) => ["chunkref.nar_id as nar_id", eb.fn.sum<number>("chunk.file_size").as("bytes")])
    .groupBy("chunkref.nar_id");
  const rows = await db.kysely
    .selectFrom("cache")
    .leftJoin("object", "object.cache_id", "cache.id")
    .leftJoin("nar", "nar.id", "object.nar_id")
    .leftJoin(narStored.as("ns"), "ns.nar_id", "object.nar_id")
    .select((eb) => [
      "cache.id as cache_id",
      eb.fn.count("object.id").as("objects"),
      eb.fn.coalesce(eb.fn.sum<number>("nar.nar_size"), sql<number>`0`).as("logical"),
      eb.fn.coalesce(eb.fn.sum<number>("ns.bytes"), sql<number>`0`).as("stored"),
    ])
    .groupBy("cache.id")
    .execute();
  return rows.map((r) => ({ cacheId: toInt(r.cache_id), objects: toInt(r.objects), logicalBytes: toInt(r.logical), storedBytes: toInt(r.stored) }));
}

/**
 * Recompute every cache's row of attic_ts_cache_stats (and today's sizes in attic_ts_daily) from
 * the tables themselves. Returns the totals over all caches.
 */
export async function reconcileCacheStats(db: Db, now: Date): Promise<{ objects: number; logicalBytes: number }> {
  const totals = await computeCacheTotals(db);
  const day = utcDay(now);
  for (const t of totals) {
    const figures = { objects: t.objects, logical_bytes: t.logicalBytes, stored_bytes: t.storedBytes };
    await db.kysely
      .insertInto("attic_ts_cache_stats")
      .values({ cache_id: t.cacheId, ...figures, updated_at: now })
      .onConflict((oc) => oc.column("cache_id").doUpdateSet({ ...figures, updated_at: now }))
      .execute();
    await db.kysely
      .insertInto("attic_ts_daily")
      .values({ cache_id: t.cacheId, day, logical_bytes: t.logicalBytes, stored_bytes: t.storedBytes })
      .onConflict((oc) => oc.columns(["cache_id", "day"]).doUpdateSet({ logical_bytes: t.logicalBytes, stored_bytes: t.storedBytes }))
      .execute();
  }
  return {
    objects: totals.reduce((a, t) => a + t.objects, 0),
    logicalBytes: totals.reduce((a, t) => a + t.logicalBytes, 0),
  };
}

export interface GcRunRecord {
  finishedAt: Date;
  durationMs: number;
  objectsRemoved: number;
  narsRemoved: number;
  chunksRemoved: number;
  bytesFreed: number;
}

/** Reconcile the caches' figures, measure the server's storage and record the GC run. */
export async function recordGcRun(db: Db, run: GcRunRecord): Promise<void> {
  const caches = await reconcileCacheStats(db, run.finishedAt);
  const nars = await db.kysely
    .selectFrom("nar")
    .select((eb) => [eb.fn.countAll().as("n"), eb.fn.coalesce(eb.fn.sum<number>("nar_size"), sql<number>`0`).as("bytes")])
    .where("state", "=", "V")
    .executeTakeFirstOrThrow();
  const chunks = await db.kysely
    .selectFrom("chunk")
    .select((eb) => [
      eb.fn.countAll().as("n"),
      eb.fn.coalesce(eb.fn.sum<number>("chunk_size"), sql<number>`0`).as("bytes"),
      eb.fn.coalesce(eb.fn.sum<number>("file_size"), sql<number>`0`).as("stored"),
    ])
    .where("state", "=", "V")
    .executeTakeFirstOrThrow();
  await db.kysely
    .insertInto("attic_ts_gc_run")
    .values({
      finished_at: run.finishedAt,
      duration_ms: Math.round(run.durationMs),
      objects_removed: run.objectsRemoved,
      nars_removed: run.narsRemoved,
      chunks_removed: run.chunksRemoved,
      bytes_freed: run.bytesFreed,
      objects: caches.objects,
      logical_bytes: caches.logicalBytes,
      nars: toInt(nars.n),
      nar_bytes: toInt(nars.bytes),
      chunks: toInt(chunks.n),
      chunk_bytes: toInt(chunks.bytes),
      stored_bytes: toInt(chunks.stored),
    })
    .execute();
}
