// `atticadm unpack` (docs/compaction.md, the way back to upstream's layout): every valid chunk in
// a pack is read (runs of adjacent chunks, one ranged read each), checked against its hash and
// written as its own object under its row's `remote_file` (where upstream reads it), and then
// its row leaves the pack; packs left without a live chunk are retired, and deleted after the
// grace period by GC (or at once with `deleteNow`, when no atticd serves the storage). Under the
// "gc" lease, so no compaction moves chunks meanwhile. Interrupted, it can run again: a row still
// in its pack is simply unpacked again (the object is rewritten whole under the same name).
import type { Db } from "../../db/connect.ts";
import { withLease } from "../../db/queries/leases.ts";
import { packedChunkCount, packedChunksAfter, packFigures, retireDeadPacks, settledBefore, unpackChunkRows, type PackedChunk } from "../../db/queries/pack-gc.ts";
import { deleteRetiredPacks, emptyCompactionReport, frameMatches, parseRemoteFile, runsOf } from "../../gc/compact.ts";
import { readPackRange } from "../../gc/pack-io.ts";
import { putAll } from "../../storage/streams.ts";
import type { BufferedFile, StorageDriver } from "../../storage/types.ts";

/** Chunks read per page, in (pack, offset) order. */
const PAGE = 256;

export interface UnpackReport {
  chunks: number;
  bytes: number;
  /** chunks whose bytes could not be read or did not match their hash: left in their pack */
  failures: number;
  packsRetired: number;
  packsDeleted: number;
  /** chunks still in packs afterwards (pending ones: an atticd still writes packs) */
  leftValid: number;
  leftPending: number;
}

export async function unpackAll(
  deps: { db: Db; storage: StorageDriver },
  options: { deleteNow: boolean },
  out: (line: string) => void,
): Promise<UnpackReport | null> {
  const { db, storage } = deps;
  const result = await withLease(db, "gc", async (signal) => {
    const report: UnpackReport = { chunks: 0, bytes: 0, failures: 0, packsRetired: 0, packsDeleted: 0, leftValid: 0, leftPending: 0 };
    let cursor = { packId: 0, offset: -1 };
    for (;;) {
      signal.throwIfAborted();
      const page = await packedChunksAfter(db, cursor, PAGE);
      if (page.length === 0) break;
      const last = page[page.length - 1]!;
      cursor = { packId: last.packId, offset: last.offset };
      const byPack = new Map<number, PackedChunk[]>();
      for (const c of page) {
        const list = byPack.get(c.packId);
        if (list) list.push(c);
        else byPack.set(c.packId, [c]);
      }
      const files: BufferedFile[] = [];
      const moves: { chunkId: number; packId: number; remoteFileId: string }[] = [];
      for (const [packId, chunks] of byPack) {
        const packFile = parseRemoteFile(chunks[0]!.packFile);
        for (const run of runsOf(chunks)) {
          const first = run[0]!;
          const end = run[run.length - 1]!;
          let bytes: Buffer;
          try {
            bytes = await readPackRange(storage, packFile, first.offset, end.offset + end.length - first.offset, signal);
          } catch (err) {
            if (signal.aborted) throw err;
            report.failures += run.length;
            out(`pack ${packId}: cannot read ${run.length} chunks from offset ${first.offset}: ${(err as Error).message}`);
            continue;
          }
          for (const c of run) {
            const frame = bytes.subarray(c.offset - first.offset, c.offset - first.offset + c.length);
            if (!frameMatches(frame, c)) {
              report.failures++;
              out(`chunk ${c.id} in pack ${packId} at ${c.offset}: bytes do not match its hash; left in its pack (atticadm verify --repair)`);
              continue;
            }
            files.push({ remoteFile: parseRemoteFile(c.remoteFile), data: frame });
            moves.push({ chunkId: c.id, packId, remoteFileId: c.remoteFileId });
          }
        }
      }
      // objects durable first, rows after: a crash in between leaves rows in their packs, unpacked again next time
      await putAll(storage, files, signal);
      report.chunks += await unpackChunkRows(db, moves);
      report.bytes += files.reduce((sum, f) => sum + f.data.byteLength, 0);
    }
    // a pack that may still gain rows (an upload is committing into it) is left: GC drops it once dead
    const settled = await settledBefore(db);
    const empty = (await packFigures(db, settled ? { sealedBefore: settled } : {})).filter((p) => p.liveChunks === 0).map((p) => p.id);
    report.packsRetired = await retireDeadPacks(db, empty, new Date());
    if (options.deleteNow) {
      const deleted = emptyCompactionReport();
      await deleteRetiredPacks(db, storage, new Date(Date.now() + 1000), signal, deleted);
      report.packsDeleted = deleted.packsDeleted;
    }
    const left = await packedChunkCount(db);
    report.leftValid = left.valid;
    report.leftPending = left.pending;
    return report;
  });
  return result.acquired ? result.value : null;
}
