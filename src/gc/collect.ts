// One garbage-collection run, in the order that keeps concurrent uploads safe (see the header of
// db/queries/gc.ts): objects to drop (retention, soft-deleted caches, quotas) → crash leftovers
// → orphan NARs → orphan chunks marked D → their files deleted in pages → their rows removed →
// packs compacted (compact.ts);
// then token revocations whose tokens have expired, and the dashboard's aggregates are recomputed
// and the run recorded (db/queries/stats.ts). Pinned objects are exempt from retention and quotas
// (db/queries/gc.ts).
// Everything runs under the "gc" lease, so two collectors started by mistake never work at once.
import type { Db } from "../db/connect.ts";
import {
  deleteExpiredObjects,
  deleteObjectsOfDeletedCaches,
  deleteOrphanNars,
  listRetentionCaches,
  markOrphanChunksDeleted,
  reapStalePending,
} from "../db/queries/gc.ts";
import { withLease } from "../db/queries/leases.ts";
import { deleteExpiredRevocations } from "../db/queries/revocations.ts";
import { deleteStaleUpstreamNarinfos } from "../db/queries/upstreams.ts";
import { recordGcRun } from "../db/queries/stats.ts";
import type { StorageDriver } from "../storage/types.ts";
import { reapStagedNars } from "../storage/staging.ts";
import { deleteNixFilesOfDeletedCaches } from "../db/queries/nix-files.ts";
import { deleteChunkFiles } from "./chunk-files.ts";
import { compactPacks, type CompactionConfig } from "./compact.ts";
import { enforceQuotas } from "./quota.ts";
import { reapAbandonedUploadSessions } from "./upload-sessions.ts";
import { emptyReport, type GcReport } from "./report.ts";

export interface GcConfig {
  /** seconds; 0 = objects of caches without their own retention are kept forever */
  defaultRetentionPeriod: number;
  /** seconds after which pending rows, holds and temp files are taken for leftovers of a crash; 0 = never */
  staleGracePeriod: number;
  /** global quota on the summed logical size of all caches, bytes; null = none */
  maxSize: number | null;
  /** where upload sessions stage early parts (`upload.staging-path`); unset: not swept */
  uploadStagingPath?: string;
  /** compaction of packs (docs/compaction.md); unset: the defaults of the config schema */
  compaction?: CompactionConfig;
}

/**
 * The config schema's defaults (10 % dead, 4 GiB copied per run, a 64 MiB pack, 1 hour of grace),
 * without packing chunks stored one object each (which the server turns on with `storage.packs`).
 */
export const DEFAULT_COMPACTION: CompactionConfig = {
  threshold: 0.1,
  maxRewriteBytes: 4 * 2 ** 30,
  packSize: 64 * 2 ** 20,
  retiredGraceMs: 3600_000,
  packLoose: false,
};

export interface GcDeps {
  db: Db;
  storage: StorageDriver;
  config: GcConfig;
  /** stops the run between steps (shutdown); the run then rejects with the signal's reason */
  signal?: AbortSignal;
  /** for tests: the current time */
  now?: () => Date;
  /** the folder of NARs pushed with `nix copy` awaiting their narinfo (nix-protocol.staging-path) */
  stagingPath?: string;
  /** who holds the "gc" lease: the same for every run of one periodic collector (see withLease) */
  leaseOwner?: string;
  /** for crash tests: called between the steps of a compaction's rewrite */
  onCompactionStep?: (step: "copied" | "durable" | "committed") => Promise<void> | void;
}

export async function runGarbageCollectionOnce(deps: GcDeps): Promise<GcReport> {
  const started = performance.now();
  const report = emptyReport();
  deps.signal?.throwIfAborted();
  await withLease(
    deps.db,
    "gc",
    async (leaseLost) => {
      report.ran = true;
      await collect(deps, report, deps.signal ? AbortSignal.any([leaseLost, deps.signal]) : leaseLost);
      // the dashboard's figures: every cache recomputed, and this run with the storage it left
      await recordGcRun(deps.db, {
        finishedAt: deps.now?.() ?? new Date(),
        durationMs: performance.now() - started,
        objectsRemoved: report.objectsExpired + report.objectsOfDeletedCaches + report.objectsOverQuota,
        narsRemoved: report.nars + report.staleNars,
        chunksRemoved: report.chunks,
        bytesFreed: report.bytesFreed,
      });
    },
    deps.leaseOwner === undefined ? {} : { owner: deps.leaseOwner },
  );
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
  report.nixFilesOfDeletedCaches = await deleteNixFilesOfDeletedCaches(db);
  signal.throwIfAborted();
  const overQuota = await enforceQuotas(db, config.maxSize, signal);
  report.objectsOverQuota = overQuota.objects;
  report.buildLogsOverQuota = overQuota.buildLogs;
  signal.throwIfAborted();

  const staleBefore = config.staleGracePeriod > 0 ? new Date(now.getTime() - config.staleGracePeriod * 1000) : undefined;
  if (staleBefore) {
    const stale = await reapStalePending(db, staleBefore);
    report.staleNars = stale.nars;
    report.staleChunks = stale.chunks;
  }
  if (staleBefore) {
    const sessions = await reapAbandonedUploadSessions(db, staleBefore, config.uploadStagingPath);
    report.uploadSessions = sessions.sessions;
    report.stagedPartDirs = sessions.stagedDirs;
  }
  report.nars = await deleteOrphanNars(db, { staleHoldBefore: staleBefore });
  await markOrphanChunksDeleted(db, { staleHoldBefore: staleBefore });

  const files = await deleteChunkFiles(db, storage, signal);
  report.chunks = files.chunks;
  report.bytesFreed = files.bytesFreed;
  report.deleteFailures = files.failures;

  report.compaction = await compactPacks({
    db,
    storage,
    config: config.compaction ?? DEFAULT_COMPACTION,
    signal,
    ...(staleBefore ? { staleBefore } : {}),
    ...(deps.now ? { now: deps.now } : {}),
    ...(deps.onCompactionStep ? { onStep: deps.onCompactionStep } : {}),
  });
  report.bytesFreed += report.compaction.bytesDeleted;

  if (deps.stagingPath !== undefined && staleBefore) {
    const staged = await reapStagedNars(deps.stagingPath, staleBefore);
    report.stagedNars = staged.files;
  }

  report.revocationsExpired = await deleteExpiredRevocations(db, now);
  // pull-through: upstream narinfos whose NAR nobody asked for within a day (asked again when needed)
  await deleteStaleUpstreamNarinfos(db, new Date(now.getTime() - 24 * 3600_000));

  if (storage.sweepTempFiles && staleBefore) {
    signal.throwIfAborted();
    report.tempFiles = await storage.sweepTempFiles(config.staleGracePeriod * 1000);
  }
}

