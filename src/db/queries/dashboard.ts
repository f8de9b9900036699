// What the dashboard reads (issue 19). Every query is bounded: aggregates kept by stats.ts, or a
// LIMIT walked along an index (recent pushes: object(cache_id, created_at); most downloaded: the
// partial index on object(cache_id, download_count)). No query here grows with a cache's objects.
// They are prepared once (prepared.ts): compiling a Kysely query costs more than running these.
import { sql } from "kysely";
import type { Db } from "../connect.ts";
import { parseTimestamp, toBool, toInt, toNullableInt } from "../values.ts";
import { prepareQuery, type Placeholders } from "./prepared.ts";
import { utcDay } from "./stats.ts";

export interface CacheListEntry {
  id: number;
  name: string;
  isPublic: boolean;
  /** seconds; null = the global default */
  retentionPeriod: number | null;
  maxSize: number | null;
  objects: number;
  logicalBytes: number;
  storedBytes: number;
}

const cacheColumns = [
  "cache.id", "cache.name", "cache.is_public", "cache.retention_period", "cache.max_size", "s.objects", "s.logical_bytes", "s.stored_bytes",
] as const;

const listCachesQuery = prepareQuery((k, $: Placeholders<{ limit: number }>) =>
  k
    .selectFrom("cache")
    .leftJoin("attic_ts_cache_stats as s", "s.cache_id", "cache.id")
    .select(cacheColumns)
    .where("cache.deleted_at", "is", null)
    .orderBy("cache.name")
    .limit($.limit),
);

const cacheByNameQuery = prepareQuery((k, $: Placeholders<{ name: string }>) =>
  k
    .selectFrom("cache")
    .leftJoin("attic_ts_cache_stats as s", "s.cache_id", "cache.id")
    .select(cacheColumns)
    .where("cache.deleted_at", "is", null)
    .where("cache.name", "=", $.name),
);

type CacheWithStatsRow = Awaited<ReturnType<typeof listCachesQuery.run>>[number];

function toCacheListEntry(r: CacheWithStatsRow): CacheListEntry {
  return {
    id: toInt(r.id),
    name: r.name,
    isPublic: toBool(r.is_public),
    retentionPeriod: toNullableInt(r.retention_period),
    maxSize: toNullableInt(r.max_size),
    objects: toNullableInt(r.objects) ?? 0,
    logicalBytes: toNullableInt(r.logical_bytes) ?? 0,
    storedBytes: toNullableInt(r.stored_bytes) ?? 0,
  };
}

/** The live caches with their figures, by name (at most `limit`). */
export async function listCachesWithStats(db: Db, limit = 1000): Promise<CacheListEntry[]> {
  return (await listCachesQuery.run(db, { limit })).map(toCacheListEntry);
}

/** One live cache with its figures, or null. */
export async function cacheWithStats(db: Db, name: string): Promise<CacheListEntry | null> {
  const [row] = await cacheByNameQuery.run(db, { name });
  return row ? toCacheListEntry(row) : null;
}

export interface PushEntry {
  storePath: string;
  narSize: number;
  createdBy: string | null;
  createdAt: Date;
}

const recentPushesQuery = prepareQuery((k, $: Placeholders<{ cacheId: number; limit: number }>) =>
  k
    .selectFrom("object")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .select(["object.store_path", "nar.nar_size", "object.created_by", "object.created_at"])
    .where("object.cache_id", "=", $.cacheId)
    .orderBy("object.created_at", "desc")
    .limit($.limit),
);

export async function recentPushes(db: Db, cacheId: number, limit = 10): Promise<PushEntry[]> {
  const rows = await recentPushesQuery.run(db, { cacheId, limit });
  return rows.map((r) => ({ storePath: r.store_path, narSize: toInt(r.nar_size), createdBy: r.created_by, createdAt: parseTimestamp(r.created_at) }));
}

export interface DownloadedEntry {
  storePath: string;
  narSize: number;
  downloads: number;
}

const mostDownloadedQuery = prepareQuery((k, $: Placeholders<{ cacheId: number; limit: number }>) =>
  k
    .selectFrom("object")
    .innerJoin("nar", "nar.id", "object.nar_id")
    .select(["object.store_path", "nar.nar_size", "object.download_count"])
    .where("object.cache_id", "=", $.cacheId)
    .where("object.download_count", "is not", null)
    .orderBy("object.download_count", "desc")
    .limit($.limit),
);

export async function mostDownloaded(db: Db, cacheId: number, limit = 10): Promise<DownloadedEntry[]> {
  const rows = await mostDownloadedQuery.run(db, { cacheId, limit });
  return rows.map((r) => ({ storePath: r.store_path, narSize: toInt(r.nar_size), downloads: toNullableInt(r.download_count) ?? 0 }));
}

export interface DayEntry {
  day: string;
  pushes: number;
  pushedBytes: number;
  newChunkBytes: number;
  newFileBytes: number;
  downloads: number;
  downloadedBytes: number;
  /** the size after the day's last change; null on days without one */
  logicalBytes: number | null;
  storedBytes: number | null;
}

type DailyColumn = "pushes" | "pushed_bytes" | "new_chunk_bytes" | "new_file_bytes" | "downloads" | "downloaded_bytes" | "logical_bytes" | "stored_bytes";
const DAILY_COLUMNS: readonly DailyColumn[] = ["pushes", "pushed_bytes", "new_chunk_bytes", "new_file_bytes", "downloads", "downloaded_bytes", "logical_bytes", "stored_bytes"];
const daySums = () => DAILY_COLUMNS.map((column) => sql<number | null>`sum(${sql.ref(column)})`.as(column));

const cacheDaysQuery = prepareQuery((k, $: Placeholders<{ cacheId: number; since: string }>) =>
  k.selectFrom("attic_ts_daily").select(["day", ...daySums()]).where("cache_id", "=", $.cacheId).where("day", ">=", $.since).groupBy("day").orderBy("day"),
);

/** every cache, deleted ones included (their pushes and downloads did happen) */
const allDaysQuery = prepareQuery((k, $: Placeholders<{ since: string }>) =>
  k.selectFrom("attic_ts_daily").select(["day", ...daySums()]).where("day", ">=", $.since).groupBy("day").orderBy("day"),
);

/** The last `days` UTC days that have figures, oldest first: of one cache, or summed over all (cacheId null). */
export async function dailyHistory(db: Db, cacheId: number | null, days: number, now = new Date()): Promise<DayEntry[]> {
  const since = utcDay(new Date(now.getTime() - (days - 1) * 86_400_000));
  const rows = cacheId === null ? await allDaysQuery.run(db, { since }) : await cacheDaysQuery.run(db, { cacheId, since });
  return rows.map((r) => ({
    day: r.day,
    pushes: toNullableInt(r.pushes) ?? 0,
    pushedBytes: toNullableInt(r.pushed_bytes) ?? 0,
    newChunkBytes: toNullableInt(r.new_chunk_bytes) ?? 0,
    newFileBytes: toNullableInt(r.new_file_bytes) ?? 0,
    downloads: toNullableInt(r.downloads) ?? 0,
    downloadedBytes: toNullableInt(r.downloaded_bytes) ?? 0,
    // a sum over caches is not a size: only a single cache's sizes are charted
    logicalBytes: cacheId === null ? null : toNullableInt(r.logical_bytes),
    storedBytes: cacheId === null ? null : toNullableInt(r.stored_bytes),
  }));
}

export interface PushTotals {
  pushes: number;
  pushedBytes: number;
  newChunkBytes: number;
  newFileBytes: number;
  downloads: number;
}

const pushTotalsQuery = prepareQuery((k, $: Placeholders<{ cacheId: number }>) =>
  k
    .selectFrom("attic_ts_daily")
    .select((eb) => [
      eb.fn.sum<number>("pushes").as("pushes"),
      eb.fn.sum<number>("pushed_bytes").as("pushed_bytes"),
      eb.fn.sum<number>("new_chunk_bytes").as("new_chunk_bytes"),
      eb.fn.sum<number>("new_file_bytes").as("new_file_bytes"),
      eb.fn.sum<number>("downloads").as("downloads"),
    ])
    .where("cache_id", "=", $.cacheId),
);

/** A cache's push and download totals over its whole history (one row per day it was used). */
export async function pushTotals(db: Db, cacheId: number): Promise<PushTotals> {
  const [row] = await pushTotalsQuery.run(db, { cacheId });
  return {
    pushes: toNullableInt(row?.pushes) ?? 0,
    pushedBytes: toNullableInt(row?.pushed_bytes) ?? 0,
    newChunkBytes: toNullableInt(row?.new_chunk_bytes) ?? 0,
    newFileBytes: toNullableInt(row?.new_file_bytes) ?? 0,
    downloads: toNullableInt(row?.downloads) ?? 0,
  };
}

export interface GcRunEntry {
  finishedAt: Date;
  durationMs: number;
  objectsRemoved: number;
  narsRemoved: number;
  chunksRemoved: number;
  bytesFreed: number;
  objects: number;
  logicalBytes: number;
  nars: number;
  narBytes: number;
  chunks: number;
  chunkBytes: number;
  storedBytes: number;
}

/** The last GC runs, newest first. */
const lastGcRunsQuery = prepareQuery((k, $: Placeholders<{ limit: number }>) => k.selectFrom("attic_ts_gc_run").selectAll().orderBy("id", "desc").limit($.limit));

export async function lastGcRuns(db: Db, limit = 30): Promise<GcRunEntry[]> {
  const rows = await lastGcRunsQuery.run(db, { limit });
  return rows.map((r) => ({
    finishedAt: parseTimestamp(r.finished_at),
    durationMs: toInt(r.duration_ms),
    objectsRemoved: toInt(r.objects_removed),
    narsRemoved: toInt(r.nars_removed),
    chunksRemoved: toInt(r.chunks_removed),
    bytesFreed: toInt(r.bytes_freed),
    objects: toInt(r.objects),
    logicalBytes: toInt(r.logical_bytes),
    nars: toInt(r.nars),
    narBytes: toInt(r.nar_bytes),
    chunks: toInt(r.chunks),
    chunkBytes: toInt(r.chunk_bytes),
    storedBytes: toInt(r.stored_bytes),
  }));
}

const liveTotalsQuery = prepareQuery((k) =>
  k
    .selectFrom("attic_ts_cache_stats as s")
    .innerJoin("cache", "cache.id", "s.cache_id")
    .select((eb) => [eb.fn.sum<number>("s.objects").as("objects"), eb.fn.sum<number>("s.logical_bytes").as("logical")])
    .where("cache.deleted_at", "is", null),
);
const gcRunCountQuery = prepareQuery((k) => k.selectFrom("attic_ts_gc_run").select((eb) => eb.fn.countAll().as("n")));

/** The figures /metrics and the server page read: the live caches' aggregates and the last GC run. */
export async function metricsFigures(db: Db): Promise<{ objects: number; logicalBytes: number; gcRuns: number; lastRun: GcRunEntry | null }> {
  const [caches] = await liveTotalsQuery.run(db, {});
  const [runs] = await gcRunCountQuery.run(db, {});
  const [lastRun] = await lastGcRuns(db, 1);
  return {
    objects: toNullableInt(caches?.objects) ?? 0,
    logicalBytes: toNullableInt(caches?.logical) ?? 0,
    gcRuns: toInt(runs?.n ?? 0),
    lastRun: lastRun ?? null,
  };
}
