// Compaction (docs/compaction.md): the last storage step of a GC run, under its lease. Leftovers
// of a crashed compaction are removed; each pack's live bytes are measured; the planned packs are
// dropped (no live chunk) or rewritten: copy live chunks → new pack durable → one transaction
// repoints the rows and retires the old packs; last, retired packs whose grace period has passed
// (downloads on any replica may still read them until then) are deleted.
import { createHash } from "node:crypto";
import type { Db } from "../db/connect.ts";
import {
  commitCompactionPack,
  deletePackRows,
  insertCompactionPack,
  leftoverPacks,
  liveChunksOfPack,
  looseChunks,
  type LooseChunk,
  packFigures,
  retireDeadPacks,
  retiredPacksBefore,
  settledBefore,
  type LiveChunk,
  type PackRef,
} from "../db/queries/pack-gc.ts";
import type { RemoteFile, StorageDriver } from "../storage/types.ts";
import { mapLimit } from "../util/concurrency.ts";
import { takeOverAbandonedPacks } from "./abandoned-packs.ts";
import { planCompaction, type CompactionPolicy } from "./compact-plan.ts";
import { newPackFile, openPackOutput, readPackRange, type PackOutput } from "./pack-io.ts";

/** Bytes per read of an old pack: neighbouring live chunks are read together up to this. */
const RUN_BYTES = 8 * 2 ** 20;
/** Holes up to this size are read over rather than splitting a read. */
const RUN_GAP = 256 * 1024;
/** Retired packs deleted per page. */
const PAGE = 100;
/** Chunks stored one object each, read per page and how many at a time (a page is a few MiB). */
const LOOSE_PAGE = 64;
const LOOSE_READS = 8;

export interface CompactionConfig extends CompactionPolicy {
  /** ms a retired pack is kept for downloads that may still read it */
  retiredGraceMs: number;
  /** also pack chunks stored one object each (only when new chunks are packed: `storage.packs`) */
  packLoose: boolean;
}

export interface CompactionReport {
  /** retired packs whose objects were deleted this run */
  packsDeleted: number;
  /** their bytes */
  bytesDeleted: number;
  /** packs of a crashed compaction, and abandoned open packs holding no chunk, removed */
  leftovers: number;
  /** open packs whose writer is gone, sealed at the end of their valid chunks */
  abandonedSealed: number;
  /** open packs whose writer is gone and that held no chunk (removed with the leftovers) */
  abandonedEmptied: number;
  /** packs retired without copying (no live chunk) */
  packsDropped: number;
  /** packs retired after their live chunks were copied */
  packsRewritten: number;
  /** new packs written */
  packsWritten: number;
  chunksMoved: number;
  /** of which chunks that were stored one object each */
  looseChunksPacked: number;
  bytesRewritten: number;
  /** packs that could not be read or held a damaged frame: left as they are (see atticadm verify) */
  failures: number;
  /** packs whose object could not be deleted (retried next run) */
  deleteFailures: number;
}

export function emptyCompactionReport(): CompactionReport {
  return {
    packsDeleted: 0,
    bytesDeleted: 0,
    leftovers: 0,
    abandonedSealed: 0,
    abandonedEmptied: 0,
    packsDropped: 0,
    packsRewritten: 0,
    packsWritten: 0,
    chunksMoved: 0,
    looseChunksPacked: 0,
    bytesRewritten: 0,
    failures: 0,
    deleteFailures: 0,
  };
}

export interface CompactionDeps {
  db: Db;
  storage: StorageDriver;
  config: CompactionConfig;
  signal: AbortSignal;
  now?: () => Date;
  /** the GC's stale grace period: a pack opened without a lease (by an older atticd) counts as abandoned once opened before this with no chunk claimed into it since */
  staleBefore?: Date;
  /** a hook for crash tests: called between the steps of a rewrite */
  onStep?: (step: "copied" | "durable" | "committed") => Promise<void> | void;
}

export async function compactPacks(deps: CompactionDeps): Promise<CompactionReport> {
  const { db, storage, config, signal } = deps;
  const now = deps.now?.() ?? new Date();
  const report = emptyCompactionReport();

  // 1. open packs whose writer is gone: sealed, or marked for removal (abandoned-packs.ts); then
  // what a crashed compaction wrote and never committed (only we write them, under the lease) and
  // those abandoned packs go, object then row
  // (leases are judged by the clock, never by a test's `now`: a live writer's pack is never taken)
  const abandoned = await takeOverAbandonedPacks(db, new Date(), deps.staleBefore, signal);
  report.abandonedSealed = abandoned.sealed;
  report.abandonedEmptied = abandoned.emptied;
  await deletePacks(db, storage, () => leftoverPacks(db, PAGE), report, signal, (n) => (report.leftovers += n));

  // 2. live bytes of every sealed pack, 3. the plan
  signal.throwIfAborted();
  // packs sealed since the oldest pending chunk was claimed may still gain rows: left for a later run
  const settled = await settledBefore(db);
  const figures = await packFigures(db, settled ? { sealedBefore: settled } : {});
  // a pack with pending chunks is being committed by an upload: left for a later run
  const plan = planCompaction(figures.filter((p) => !p.hasPending), config);
  report.packsDropped = await retireDeadPacks(db, plan.drop, now);

  // 4. rewrite, one new pack at a time
  const bySource = new Map(figures.map((p) => [p.id, p]));
  let out: OpenOutput | null = null;
  /** sources all of whose live chunks are in a new pack (committed, or the open one) */
  const done: number[] = [];
  const finish = async (): Promise<void> => {
    if (!out) return;
    const current = out;
    out = null;
    const { size } = await current.output.finish();
    await deps.onStep?.("durable");
    const retired = await commitCompactionPack(db, { packId: current.packId, size, moves: current.moves, retire: done.splice(0), now: deps.now?.() ?? new Date() });
    await deps.onStep?.("committed");
    report.packsWritten++;
    report.packsRewritten += retired;
    report.chunksMoved += current.moves.length;
    report.bytesRewritten += size;
  };
  const append = async (frame: Buffer, chunkId: number, fromPack: number | null): Promise<void> => {
    if (out && out.output.bytes + frame.length > config.packSize && out.moves.length > 0) await finish();
    out ??= await openOutput(db, storage, signal);
    const offset = await out.output.append(frame);
    out.moves.push({ chunkId, fromPack, offset });
  };
  // one read buffer for every run of this compaction (runs are at most RUN_BYTES)
  const readBuffer = plan.rewrite.length > 0 ? Buffer.allocUnsafe(RUN_BYTES) : undefined;
  try {
    for (const id of plan.rewrite) {
      const source = bySource.get(id)!;
      const chunks = await liveChunksOfPack(db, id);
      let complete = true;
      for (const run of runsOf(chunks)) {
        signal.throwIfAborted();
        const first = run[0]!;
        const last = run[run.length - 1]!;
        let bytes: Buffer;
        try {
          bytes = await readPackRange(storage, parseRemoteFile(source.remoteFile), first.offset, last.offset + last.length - first.offset, signal, readBuffer);
        } catch (err) {
          if (signal.aborted) throw err;
          complete = false;
          break;
        }
        for (const chunk of run) {
          const frame = bytes.subarray(chunk.offset - first.offset, chunk.offset - first.offset + chunk.length);
          if (frameMatches(frame, chunk)) await append(frame, chunk.id, id);
          else complete = false;
        }
      }
      await deps.onStep?.("copied");
      if (complete) done.push(id);
      else report.failures++;
    }
    // 5. chunks stored one object each (today's layout, or upstream's) go into packs too
    if (config.packLoose) {
      let budget = config.maxRewriteBytes - plan.rewriteBytes;
      let afterId = 0;
      while (budget > 0) {
        signal.throwIfAborted();
        const page = await looseChunks(db, afterId, LOOSE_PAGE);
        if (page.length === 0) break;
        afterId = page[page.length - 1]!.id;
        const frames = await mapLimit(page, LOOSE_READS, (c) => readLoose(storage, c, signal));
        for (const [i, chunk] of page.entries()) {
          const frame = frames[i];
          if (!frame || !frameMatches(frame, chunk)) {
            report.failures++;
            continue;
          }
          await append(frame, chunk.id, null);
          report.looseChunksPacked++;
          budget -= frame.length;
        }
        await deps.onStep?.("copied");
      }
    }
    await finish();
  } finally {
    // interrupted: the unfinished pack is abandoned (its pending row is reaped by the next run)
    const abandoned = out as OpenOutput | null;
    if (abandoned) await abandoned.output.abort();
  }

  // 6. retired packs past the grace period (with a grace of 0, those this run retired too)
  await deleteRetiredPacks(db, storage, new Date((deps.now?.() ?? new Date()).getTime() - config.retiredGraceMs), signal, report);
  return report;
}

/** Delete the objects, then the rows, of packs retired at or before `cutoff`. */
export async function deleteRetiredPacks(db: Db, storage: StorageDriver, cutoff: Date, signal: AbortSignal, report: CompactionReport): Promise<void> {
  await deletePacks(db, storage, () => retiredPacksBefore(db, cutoff, PAGE), report, signal, (n, bytes) => {
    report.packsDeleted += n;
    report.bytesDeleted += bytes;
  });
}

interface OpenOutput {
  packId: number;
  output: PackOutput;
  moves: { chunkId: number; fromPack: number | null; offset: number }[];
}

/** A chunk stored as its own object; null when it cannot be read (missing: verify reports it). */
async function readLoose(storage: StorageDriver, chunk: LooseChunk, signal: AbortSignal): Promise<Buffer | null> {
  try {
    const remoteFile = parseRemoteFile(chunk.remoteFile);
    if (storage.read) return await storage.read(remoteFile, chunk.length, signal);
    const parts: Buffer[] = [];
    for await (const piece of await storage.get(remoteFile, signal, chunk.length)) parts.push(piece as Buffer);
    return Buffer.concat(parts);
  } catch (err) {
    if (signal.aborted) throw err;
    return null;
  }
}

async function openOutput(db: Db, storage: StorageDriver, signal: AbortSignal): Promise<OpenOutput> {
  const { remoteFile, remoteFileId } = newPackFile(storage);
  const packId = await insertCompactionPack(db, JSON.stringify(remoteFile), remoteFileId);
  return { packId, output: await openPackOutput(storage, remoteFile, signal), moves: [] };
}

/**
 * The live chunks of one pack grouped into runs, each read with one ranged read of at most
 * `maxBytes`: neighbours separated by a hole of at most `maxGap` bytes share a read (reading a
 * small hole costs less than another read: a file open locally, a request on S3).
 */
export function runsOf<T extends LiveChunk>(chunks: readonly T[], maxBytes = RUN_BYTES, maxGap = RUN_GAP): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let start = 0;
  let end = 0;
  for (const c of chunks) {
    if (run.length > 0 && (c.offset < end || c.offset - end > maxGap || c.offset + c.length - start > maxBytes)) {
      runs.push(run);
      run = [];
    }
    if (run.length === 0) start = c.offset;
    run.push(c);
    end = c.offset + c.length;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

export function parseRemoteFile(json: string): RemoteFile {
  return JSON.parse(json) as RemoteFile;
}

export function frameMatches(frame: Buffer, chunk: { length: number; fileHash: string | null }): boolean {
  if (frame.length !== chunk.length) return false;
  if (chunk.fileHash === null) return true;
  return `sha256:${createHash("sha256").update(frame).digest("hex")}` === chunk.fileHash.toLowerCase();
}

async function deletePacks(
  db: Db,
  storage: StorageDriver,
  next: () => Promise<PackRef[]>,
  report: CompactionReport,
  signal: AbortSignal,
  count: (n: number, bytes: number) => void,
): Promise<void> {
  const tried = new Set<number>();
  for (;;) {
    signal.throwIfAborted();
    const page = (await next()).filter((p) => !tried.has(p.id));
    if (page.length === 0) return;
    for (const p of page) tried.add(p.id);
    const { failed } = await storage.deleteMany(page.map((p) => parseRemoteFile(p.remoteFile)));
    const failedKeys = new Set(failed.map((f) => JSON.stringify(f.remoteFile)));
    const gone = page.filter((p) => !failedKeys.has(JSON.stringify(parseRemoteFile(p.remoteFile))));
    report.deleteFailures += page.length - gone.length;
    await deletePackRows(db, gone.map((p) => p.id));
    count(gone.length, gone.reduce((sum, p) => sum + p.size, 0));
  }
}

