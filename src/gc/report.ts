// What one garbage-collection run did: the figures `atticd --mode garbage-collector-once` prints
// and the periodic loop logs.
import { emptyCompactionReport, type CompactionReport } from "./compact.ts";

export interface GcReport {
  /** false when another collector held the lease: nothing was done */
  ran: boolean;
  objectsExpired: number;
  objectsOfDeletedCaches: number;
  objectsOverQuota: number;
  nars: number;
  chunks: number;
  /** compressed bytes of the chunk files deleted from storage */
  bytesFreed: number;
  staleNars: number;
  staleChunks: number;
  tempFiles: number;
  /** upload sessions idle past the grace period, and staged-part folders crashed servers left */
  uploadSessions: number;
  stagedPartDirs: number;
  /** NARs pushed with `nix copy` whose narinfo never came, reaped from staging */
  stagedNars: number;
  /** build logs removed to bring a cache (or all) under its quota */
  buildLogsOverQuota: number;
  /** build logs and realisations of soft-deleted caches */
  nixFilesOfDeletedCaches: number;
  /** revocations whose tokens have expired, removed from the list */
  revocationsExpired: number;
  /** chunk files whose deletion failed this time (their rows stay in state D for the next run) */
  deleteFailures: number;
  /** packs compacted, dropped and deleted (docs/compaction.md) */
  compaction: CompactionReport;
  durationMs: number;
}

export function emptyReport(): GcReport {
  return {
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
    uploadSessions: 0,
    stagedPartDirs: 0,
    stagedNars: 0,
    buildLogsOverQuota: 0,
    nixFilesOfDeletedCaches: 0,
    revocationsExpired: 0,
    deleteFailures: 0,
    compaction: emptyCompactionReport(),
    durationMs: 0,
  };
}

function human(bytes: number): string {
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
    `  storage freed:   ${human(r.bytesFreed)} (${r.bytesFreed} bytes)`,
  ];
  if (r.staleNars + r.staleChunks + r.tempFiles > 0) {
    lines.push(`  recovered from crashed uploads: ${r.staleNars} NARs, ${r.staleChunks} chunks, ${r.tempFiles} temporary files`);
  }
  if (r.uploadSessions + r.stagedPartDirs > 0) {
    lines.push(`  abandoned upload sessions: ${r.uploadSessions} (${r.stagedPartDirs} folders of staged parts)`);
  }
  if (r.buildLogsOverQuota + r.nixFilesOfDeletedCaches > 0) {
    lines.push(`  build logs and realisations removed: ${r.buildLogsOverQuota} logs over quota, ${r.nixFilesOfDeletedCaches} of deleted caches`);
  }
  if (r.stagedNars > 0) lines.push(`  staged NARs never committed by a narinfo: ${r.stagedNars}`);
  if (r.revocationsExpired > 0) lines.push(`  expired token revocations removed: ${r.revocationsExpired}`);
  const c = r.compaction;
  if (c.packsDropped + c.packsRewritten + c.packsDeleted + c.leftovers + c.abandonedSealed + c.failures + c.deleteFailures > 0) {
    lines.push(
      `  packs compacted: ${c.packsRewritten} rewritten into ${c.packsWritten} (${c.chunksMoved} chunks, ${human(c.bytesRewritten)} copied), ` +
        `${c.packsDropped} dropped, ${c.packsDeleted} retired packs deleted (${human(c.bytesDeleted)})`,
    );
    if (c.abandonedSealed + c.abandonedEmptied > 0) {
      lines.push(`  open packs of an atticd that is gone: ${c.abandonedSealed} sealed at their last valid chunk, ${c.abandonedEmptied} holding no chunk removed`);
    }
    if (c.leftovers > 0) lines.push(`  packs left by an interrupted compaction or an atticd that is gone removed: ${c.leftovers}`);
    if (c.failures > 0) lines.push(`  packs that could not be read or hold a damaged chunk (left as they are; see atticadm verify): ${c.failures}`);
    if (c.deleteFailures > 0) lines.push(`  retired packs that could not be deleted (retried next run): ${c.deleteFailures}`);
  }
  if (r.deleteFailures > 0) lines.push(`  chunk files that could not be deleted (retried next run): ${r.deleteFailures}`);
  return lines.join("\n");
}
