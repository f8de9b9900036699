// The queries of garbage collection (spec section 8, issue 7). The GC module runs them in this
// order: expired objects (retention) and over-quota objects (LRU) -> orphan NARs -> orphan chunks
// marked D -> storage files deleted -> D rows removed; plus recovery of state left by crashes.
//
// Safety against concurrent uploads (several replicas on one PostgreSQL):
//   - Uploads hold a NAR/chunk (holders_count + 1, a row update) before linking to it and release
//     it after, or link it in the transaction that finds it (claimChunks with a link, which still
//     updates the row); a link (object, chunkref) or a hold always exists while the row is in use.
//   - The reaping statements skip rows another transaction has locked (FOR UPDATE SKIP LOCKED)
//     and run under REPEATABLE READ: a row changed after the statement's snapshot (a new hold,
//     a release after linking) makes it fail and be retried on fresh data, so GC never acts on
//     a stale "no link, no hold" view. On SQLite every statement runs alone (one writer).
//   - insertChunkRef links only valid chunks and share-locks them; markNarValid/markChunkValid
//     only move pending rows. An upload whose rows GC did reap fails; it never publishes a NAR
//     that points at deleted data.
//
// Stale state (decision 4). holders_count cannot be attributed to a process, so instead of
// resetting counts we let time decide, with a grace period far longer than any upload:
//   - Pending rows older than the grace period are dead uploads: pending NARs are deleted (their
//     chunkrefs cascade) unless their upload's claim lease is still renewed (a live, slow upload), pending chunks with no chunkref are marked D like any orphan chunk.
//   - Every hold records `held_at` (our column). An orphan whose last hold is older than the
//     grace period is collected even though holders_count > 0: that hold was leaked by a
//     crash. Counts are left as they are (a late release is harmless: releases never go
//     below 0), since the row is about to go anyway.
//   - An upload that really does outlive the grace period loses its rows and fails cleanly at
//     markNarValid/markChunkValid/insertChunkRef, which is the price of never leaking forever.
import { sql, type ExpressionBuilder } from "kysely";
import { transaction, type Db } from "../connect.ts";
import type { ChunkRow, Database } from "../schema.ts";
import { toInt, parseTimestamp } from "../values.ts";
import { maxBatch } from "./batch.ts";
import { batches } from "../../util/concurrency.ts";
import { NAR_CLAIM_LEASE_PREFIX } from "./nars.ts";
import { CHUNK_COLUMNS, toChunkRow } from "./rows.ts";

/** GC statements on PostgreSQL: REPEATABLE READ, retried on serialization failures. */
function reaping<T>(db: Db, fn: (tx: Db) => Promise<T>): Promise<T> {
  return transaction(db, fn, { isolation: "repeatable read", retries: 8 });
}

export interface RetentionCache {
  id: number;
  name: string;
  /** seconds, > 0 */
  retentionPeriod: number;
}

/**
 * Caches subject to time-based GC: their own retention_period, or the global default when NULL;
 * 0 disables. Soft-deleted caches are included (as upstream: their objects are collected too).
 */
export async function listRetentionCaches(db: Db, defaultRetentionSecs: number): Promise<RetentionCache[]> {
  const rows = await db.kysely
    .selectFrom("cache")
    .select((eb) => ["id", "name", eb.fn.coalesce("retention_period", eb.cast<number>(eb.val(defaultRetentionSecs), "bigint")).as("period")])
    .execute();
  return rows
    .map((r) => ({ id: toInt(r.id), name: r.name, retentionPeriod: toInt(r.period) }))
    .filter((c) => c.retentionPeriod !== 0);
}

/** Objects of the cache created before the cutoff and not downloaded since, unless pinned. Returns how many. */
export async function deleteExpiredObjects(db: Db, opts: { cacheId: number; cutoff: Date }): Promise<number> {
  const result = await db.kysely
    .deleteFrom("object")
    .where("cache_id", "=", opts.cacheId)
    .where("created_at", "<", opts.cutoff)
    .where((eb) => eb.or([eb("last_accessed_at", "is", null), eb("last_accessed_at", "<", opts.cutoff)]))
    .where((eb) => eb.not(eb.exists(pinOf(eb, "object"))))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * A pin of the object's cache that keeps the object's path (ours, issue 18): retention and quota
 * skip pinned objects; explicit deletion, destroyed caches and crash leftovers do not.
 */
function pinOf(eb: ExpressionBuilder<Database, "object">, object: "object") {
  return eb
    .selectFrom("attic_ts_pin_path")
    .innerJoin("attic_ts_pin", "attic_ts_pin.id", "attic_ts_pin_path.pin_id")
    .select("attic_ts_pin_path.pin_id")
    .whereRef("attic_ts_pin_path.store_path_hash", "=", `${object}.store_path_hash`)
    .whereRef("attic_ts_pin.cache_id", "=", `${object}.cache_id`);
}

export interface StaleHoldOption {
  /** holds last taken before this are treated as leaked by a crash (see the header); omit to respect every hold */
  staleHoldBefore?: Date;
}

/** Valid NARs no object points at and nobody holds. Their chunkrefs cascade. Returns how many. */
export async function deleteOrphanNars(db: Db, opts: StaleHoldOption = {}): Promise<number> {
  return reaping(db, async (tx) => {
    const result = await tx.kysely
      .deleteFrom("nar")
      .where("id", "in", (eb) =>
        eb
          .selectFrom("nar as orphan")
          .select("orphan.id")
          .where("orphan.state", "=", "V")
          .where((w) =>
            opts.staleHoldBefore
              ? w.or([w("orphan.holders_count", "=", 0), w("orphan.held_at", "<", opts.staleHoldBefore)])
              : w("orphan.holders_count", "=", 0),
          )
          .where((w) => w.not(w.exists(w.selectFrom("object").select("object.id").whereRef("object.nar_id", "=", "orphan.id"))))
          .$call((q) => tx.dialect.forUpdate(q, { skipLocked: true })),
      )
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  });
}

/** Valid chunks no chunkref points at and nobody holds become D (deleted). Returns how many. */
export async function markOrphanChunksDeleted(db: Db, opts: StaleHoldOption = {}): Promise<number> {
  return reaping(db, async (tx) => {
    const result = await tx.kysely
      .updateTable("chunk")
      .set({ state: "D" })
      .where("id", "in", (eb) =>
        eb
          .selectFrom("chunk as orphan")
          .select("orphan.id")
          .where("orphan.state", "=", "V")
          .where((w) =>
            opts.staleHoldBefore
              ? w.or([w("orphan.holders_count", "=", 0), w("orphan.held_at", "<", opts.staleHoldBefore)])
              : w("orphan.holders_count", "=", 0),
          )
          .where((w) => w.not(w.exists(w.selectFrom("chunkref").select("chunkref.id").whereRef("chunkref.chunk_id", "=", "orphan.id"))))
          .$call((q) => tx.dialect.forUpdate(q, { skipLocked: true })),
      )
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  });
}

/**
 * Up to `limit` chunks in state D with an id above `afterId`, in id order: their files are to be
 * deleted, then their rows. Paging by id lets one run try every D row once, even when the files
 * of a whole page could not be deleted.
 */
export async function selectDeletedChunks(db: Db, limit: number, afterId = 0): Promise<ChunkRow[]> {
  const rows = await db.kysely
    .selectFrom("chunk")
    .select(CHUNK_COLUMNS)
    .where("state", "=", "D")
    .where("id", ">", afterId)
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map(toChunkRow);
}

/** Remove rows of D chunks whose files are gone; batched under the engine's variable limit. */
export async function deleteChunkRows(db: Db, ids: readonly number[]): Promise<number> {
  let deleted = 0;
  for (const batch of batches(ids, maxBatch(db))) {
    const result = await db.kysely.deleteFrom("chunk").where("id", "in", batch).where("state", "=", "D").executeTakeFirst();
    deleted += Number(result.numDeletedRows);
  }
  return deleted;
}

/** Pending rows older than the grace period belong to uploads that died (see the header). */
export async function reapStalePending(db: Db, olderThan: Date): Promise<{ nars: number; chunks: number }> {
  return reaping(db, async (tx) => {
    const now = new Date();
    const nars = await tx.kysely
      .deleteFrom("nar")
      .where("state", "=", "P")
      .where("created_at", "<", olderThan)
      // an upload still storing it renews its claim's lease (server/upload/nar-claim.ts): not dead
      .where((w) =>
        w.not(
          w.exists(
            w
              .selectFrom("attic_ts_lease")
              .select("attic_ts_lease.name")
              .where("attic_ts_lease.name", "=", sql<string>`${sql.lit(NAR_CLAIM_LEASE_PREFIX)} || nar.nar_hash`)
              .where("attic_ts_lease.expires_at", ">", now),
          ),
        ),
      )
      .executeTakeFirst();
    const chunks = await tx.kysely
      .updateTable("chunk")
      .set({ state: "D" })
      .where("state", "=", "P")
      .where("created_at", "<", olderThan)
      .where((w) => w.not(w.exists(w.selectFrom("chunkref").select("chunkref.id").whereRef("chunkref.chunk_id", "=", "chunk.id"))))
      .executeTakeFirst();
    return { nars: Number(nars.numDeletedRows), chunks: Number(chunks.numUpdatedRows) };
  });
}

// Size quotas (ours). The logical size of a cache is the sum of the NAR sizes of its objects:
// what the cache would take on its own, whatever is shared with other caches.

export async function cacheLogicalSize(db: Db, cacheId: number): Promise<number> {
  const row = await db.kysely
    .selectFrom("object")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("nar.nar_size"), sql<number>`0`).as("size"))
    .where("object.cache_id", "=", cacheId)
    .executeTakeFirstOrThrow();
  const logs = await db.kysely
    .selectFrom("attic_ts_build_log")
    .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("size"), sql<number>`0`).as("size"))
    .where("cache_id", "=", cacheId)
    .executeTakeFirstOrThrow();
  return toInt(row.size) + toInt(logs.size);
}

/** Sum over all caches (a NAR in two caches counts twice), for the global quota. */
export async function totalLogicalSize(db: Db): Promise<number> {
  const row = await db.kysely
    .selectFrom("object")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("nar.nar_size"), sql<number>`0`).as("size"))
    .executeTakeFirstOrThrow();
  const logs = await db.kysely
    .selectFrom("attic_ts_build_log")
    .select((eb) => eb.fn.coalesce(eb.fn.sum<number>("size"), sql<number>`0`).as("size"))
    .executeTakeFirstOrThrow();
  return toInt(row.size) + toInt(logs.size);
}

export interface OldBuildLog {
  id: number;
  size: number;
  created_at: Date;
}

/** The oldest build logs of a cache (or of all caches), for quotas: a log counts by its uncompressed size. */
export async function oldestBuildLogs(db: Db, cacheId: number | null, limit: number): Promise<OldBuildLog[]> {
  const rows = await db.kysely
    .selectFrom("attic_ts_build_log")
    .select(["id", "size", "created_at"])
    .$if(cacheId !== null, (q) => q.where("cache_id", "=", cacheId!))
    .orderBy("created_at")
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: toInt(r.id), size: toInt(r.size), created_at: parseTimestamp(r.created_at) }));
}

export async function deleteBuildLogs(db: Db, ids: readonly number[]): Promise<number> {
  let deleted = 0;
  for (const batch of batches(ids, maxBatch(db))) {
    const result = await db.kysely.deleteFrom("attic_ts_build_log").where("id", "in", batch).executeTakeFirst();
    deleted += Number(result.numDeletedRows);
  }
  return deleted;
}

export interface QuotaCache {
  id: number;
  name: string;
  maxSize: number;
}

export async function listQuotaCaches(db: Db): Promise<QuotaCache[]> {
  const rows = await db.kysely.selectFrom("cache").select(["id", "name", "max_size"]).where("max_size", "is not", null).execute();
  return rows.map((r) => ({ id: toInt(r.id), name: r.name, maxSize: toInt(r.max_size) }));
}

export interface LruObject {
  id: number;
  cache_id: number;
  nar_size: number;
  /** last download, or creation when never downloaded */
  last_used: Date;
}

/** The least recently used objects of a cache (or of all caches when cacheId is null), oldest first. */
export async function leastRecentlyUsedObjects(db: Db, cacheId: number | null, limit: number): Promise<LruObject[]> {
  const rows = await db.kysely
    .selectFrom("object")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .select((eb) => [
      "object.id as id",
      "object.cache_id as cache_id",
      "nar.nar_size as nar_size",
      eb.fn.coalesce("object.last_accessed_at", "object.created_at").as("last_used"),
    ])
    .$if(cacheId !== null, (q) => q.where("object.cache_id", "=", cacheId!))
    .where((eb) => eb.not(eb.exists(pinOf(eb, "object"))))
    .orderBy("last_used")
    .orderBy("object.id")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: toInt(r.id), cache_id: toInt(r.cache_id), nar_size: toInt(r.nar_size), last_used: parseTimestamp(r.last_used) }));
}

export async function deleteObjects(db: Db, ids: readonly number[]): Promise<number> {
  let deleted = 0;
  for (const batch of batches(ids, maxBatch(db))) {
    const result = await db.kysely.deleteFrom("object").where("id", "in", batch).executeTakeFirst();
    deleted += Number(result.numDeletedRows);
  }
  return deleted;
}

/** Every object of the soft-deleted caches (as upstream: a deleted cache's objects are garbage). */
export async function deleteObjectsOfDeletedCaches(db: Db): Promise<number> {
  const result = await db.kysely
    .deleteFrom("object")
    .where("cache_id", "in", (eb) => eb.selectFrom("cache").select("cache.id").where("cache.deleted_at", "is not", null))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
