// One garbage-collection run, in the order that keeps concurrent uploads safe (see the header of
// db/queries/gc.ts): objects to drop (retention, soft-deleted caches, quotas) → orphan NARs →
// orphan chunks marked D → their files deleted in batches → their rows removed. Files whose
// deletion fails keep their D rows and are retried by the next run. Everything runs under the
// "gc" lease, so two collectors started by mistake never work at once.
import type { Db } from "../db/connect.ts";
import {
  deleteChunkRows,
  deleteExpiredObjects,
  deleteObjects,
  deleteObjectsOfDeletedCaches,
  deleteOrphanNars,
  cacheLogicalSize,
  leastRecentlyUsedObjects,
  listQuotaCaches,
  listRetentionCaches,
  markOrphanChunksDeleted,
  reapStalePending,
  selectDeletedChunks,
  totalLogicalSize,
} from "../db/queries/gc.ts";
import { withLease } from "../db/queries/leases.ts";
import type { RemoteFile, StorageDriver } from "../storage/types.ts";

export interface GcConfig {
  /** seconds; 0 = objects of caches without their own retention are kept forever */
  defaultRetentionPeriod: number;
  /** seconds after which pending rows and holds are taken for leftovers of a crash */
  staleGracePeriod: number;
  /** global quota on the summed logical size of all caches, bytes; null = none */
  maxSize: number | null;
}

export interface GcDeps {
  db: Db;
  storage: StorageDriver;
  config: GcConfig;
  /** for tests: the current time */
  now?: () => Date;
}

export interface GcReport {
  /** false when another collector held the lease: nothing was done */
  ran: boolean;
  objectsExpired: number;
  objectsOfDeletedCaches: number;
  objectsOverQuota: number;
  nars: number;
  chunks: number;
  bytesFreed: number;
  staleNars: number;
  staleChunks: number;
  tempFiles: number;
  /** chunk files whose deletion failed this time (retried next run) */
  deleteFailures: number;
  durationMs: number;
}

/** Rows fetched per step when evicting by quota or deleting files. */
const BATCH = 1000;

export async function runGarbageCollectionOnce(deps: GcDeps): Promise<GcReport> {
  const started = performance.now();
  const report: GcReport = {
    ran: false,
    objectsExpired: 0,
    objectsOfDeletedCaches: 0,
    objectsOverQuota: 0,
    nars: 0,
    chunks: 0,
    bytesFreed: 0,
    staleNars: 0,
    staleChunks: 0,
    tempFiles: 0,
    deleteFailures: 0,
    durationMs: 0,
  };
  const result = await withLease(deps.db, "gc", async (signal) => {
    report.ran = true;
    await collect(deps, report, signal);
  });
  if (!result.acquired) report.ran = false;
  report.durationMs = performance.now() - started;
  return report;
}

async function collect(deps: GcDeps, report: GcReport, signal: AbortSignal): Promise<void> {
  const { db, storage, config } = deps;
  const now = deps.now?.() ?? new Date();

  for (const cache of await listRetentionCaches(db, config.defaultRetentionPeriod)) {
    const cutoff = new Date(now.getTime() - cache.retentionPeriod * 1000);
    report.objectsExpired += await deleteExpiredObjects(db, { cacheId: cache.id, cutoff });
  }
  report.objectsOfDeletedCaches = await deleteObjectsOfDeletedCaches(db);
  report.objectsOverQuota = await enforceQuotas(db, config.maxSize);
  signal.throwIfAborted();

  const staleBefore = config.staleGracePeriod > 0 ? new Date(now.getTime() - config.staleGracePeriod * 1000) : undefined;
  if (staleBefore) {
    const stale = await reapStalePending(db, staleBefore);
    report.staleNars = stale.nars;
    report.staleChunks = stale.chunks;
  }
  report.nars = await deleteOrphanNars(db, { staleHoldBefore: staleBefore });
  await markOrphanChunksDeleted(db, { staleHoldBefore: staleBefore });
  signal.throwIfAborted();

  // Files first, rows after: a row in state D whose file could not be deleted stays for the next run.
  for (;;) {
    const batch = await selectDeletedChunks(db, BATCH);
    if (batch.length === 0) break;
    const remoteFiles = batch.map((chunk) => JSON.parse(chunk.remote_file) as RemoteFile);
    const { failed } = await storage.deleteMany(remoteFiles);
    const failedKeys = new Set(failed.map((f) => JSON.stringify(f.remoteFile)));
    const done = batch.filter((c) => !failedKeys.has(JSON.stringify(JSON.parse(c.remote_file))));
    report.deleteFailures += batch.length - done.length;
    report.chunks += await deleteChunkRows(db, done.map((c) => c.id));
    report.bytesFreed += done.reduce((sum, c) => sum + (c.file_size ?? 0), 0);
    signal.throwIfAborted();
    // a batch where nothing could be deleted would come back forever: leave it for the next run
    if (done.length === 0 || batch.length < BATCH) break;
  }

  // leftovers of interrupted local writes (temp files never renamed into place)
  const sweep = (storage as { sweepTempFiles?: (olderThanMs: number) => Promise<number> }).sweepTempFiles;
  if (sweep && staleBefore) report.tempFiles = await sweep.call(storage, config.staleGracePeriod * 1000);
}

/**
 * Logical size = sum of the NAR sizes of a cache's objects. Over quota, the least recently used
 * objects (last download, else creation) go first until the cache, then all caches together,
 * fit again.
 */
async function enforceQuotas(db: Db, globalMax: number | null): Promise<number> {
  let evicted = 0;
  for (const cache of await listQuotaCaches(db)) {
    evicted += await evictUntil(db, cache.id, await cacheLogicalSize(db, cache.id), cache.maxSize);
  }
  if (globalMax !== null) evicted += await evictUntil(db, null, await totalLogicalSize(db), globalMax);
  return evicted;
}

async function evictUntil(db: Db, cacheId: number | null, size: number, max: number): Promise<number> {
  let evicted = 0;
  while (size > max) {
    const candidates = await leastRecentlyUsedObjects(db, cacheId, BATCH);
    if (candidates.length === 0) break;
    const victims: number[] = [];
    for (const object of candidates) {
      if (size <= max) break;
      victims.push(object.id);
      size -= object.nar_size;
    }
    evicted += await deleteObjects(db, victims);
  }
  return evicted;
}

function mib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(2)} MiB`;
}

export function formatGcReport(r: GcReport): string {
  if (!r.ran) return "Garbage collection skipped: another collector is running (it holds the gc lease).";
  const objects = r.objectsExpired + r.objectsOfDeletedCaches + r.objectsOverQuota;
  const lines = [
    `Garbage collection finished in ${(r.durationMs / 1000).toFixed(2)} s:`,
    `  objects removed: ${objects} (${r.objectsExpired} expired, ${r.objectsOfDeletedCaches} of deleted caches, ${r.objectsOverQuota} over quota)`,
    `  NARs removed:    ${r.nars}`,
    `  chunks removed:  ${r.chunks}`,
    `  storage freed:   ${mib(r.bytesFreed)} (${r.bytesFreed} bytes)`,
  ];
  if (r.staleNars + r.staleChunks + r.tempFiles > 0) {
    lines.push(`  recovered from crashed uploads: ${r.staleNars} NARs, ${r.staleChunks} chunks, ${r.tempFiles} temporary files`);
  }
  if (r.deleteFailures > 0) lines.push(`  chunk files that could not be deleted (retried next run): ${r.deleteFailures}`);
  return lines.join("\n");
}
