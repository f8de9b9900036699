// A NAR at or above the chunking threshold, in one pass (docs/architecture.md, "The life of an
// upload"): its bytes go to a CPU worker (nar-pass.ts) that validates, lists, hashes and cuts it
// and hashes each chunk; here, each batch of chunk hashes is claimed in the database, the worker
// compresses only the new chunks, their frames are appended to the open pack and the chunks
// linked into the NAR. The NAR turns valid, with its listing, once its hash and size match and
// every chunk it uses is durable and valid. A failed or aborted upload removes what it wrote.
import type { UploadPathResult } from "../../api/v1.ts";
import type { Db } from "../../db/connect.ts";
import { transaction } from "../../db/connect.ts";
import { markNarValid } from "../../db/queries/nars.ts";
import { putNarListing } from "../../db/queries/nix-files.ts";
import type { CacheRow } from "../../db/schema.ts";
import { TaskSet } from "../../util/concurrency.ts";
import type { Config } from "../config/types.ts";
import { requestError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import type { BodyReader } from "./body.ts";
import type { ChunkStore, CreatedChunks } from "./chunks.ts";
import { asUploadError, type UploadCleanup } from "./cleanup.ts";
import type { UploadInfo } from "./info.ts";
import { ChunkLinks } from "./links.ts";
import { NarPassSession, type ChunkBatch } from "./nar-pass.ts";
import { publish } from "./publish.ts";

/**
 * Chunks are claimed in batches (one transaction each) and up to BATCHES_IN_FLIGHT batches are
 * being stored at once; their bytes wait on the worker meanwhile (at most QUEUED + this many
 * batches of chunks, each ≤ chunking.max-size, 64 KiB on average). A batch spends most of its
 * time waiting for the database and storage, so several run at once. Upstream stores 10 chunks
 * at a time, one by one.
 */
export const CHUNK_BATCH = 16;
const BATCHES_IN_FLIGHT = 6;

export interface ChunkedDeps {
  db: Db;
  config: Config;
  metrics: Metrics;
  chunks: ChunkStore;
  cleanup: UploadCleanup;
}

export async function uploadChunked(deps: ChunkedDeps, info: UploadInfo, cache: CacheRow, body: BodyReader, sub: string | null, narId: number): Promise<UploadPathResult> {
  const { db, config, chunks } = deps;
  const created: CreatedChunks = [];
  const links = new ChunkLinks(db, narId);
  const abort = new AbortController();
  const tasks = new TaskSet(BATCHES_IN_FLIGHT);
  let firstError: unknown = null;
  let fileSize = 0;
  let newFileBytes = 0;
  let dedupBytes = 0;
  let seq = 0;
  const pass = new NarPassSession(body.take(info.nar_size), {
    chunking: { minSize: config.chunking.minSize, avgSize: config.chunking.avgSize, maxSize: config.chunking.maxSize },
    compression: { type: config.compression.type, level: config.compression.level },
    batchSize: CHUNK_BATCH,
    narSize: info.nar_size,
  });
  try {
    for await (const batch of pass.batches()) {
      if (firstError) break;
      const firstSeq = seq;
      seq += batch.hashes.length;
      const task = storeBatch(deps, pass, batch, firstSeq, links, created, abort.signal).then(
        (stored) => {
          fileSize += stored.fileSize;
          newFileBytes += stored.newFileBytes;
          dedupBytes += stored.dedupBytes;
        },
        (err: unknown) => {
          firstError ??= err;
          abort.abort();
        },
      );
      tasks.add(task);
      await tasks.room();
    }
    await tasks.settled();
    if (firstError) throw firstError;
    await links.flush();
    const { narHash, narSize, listing } = pass.result();
    if (!narHash.equals(info.narHash) || narSize !== info.nar_size) throw requestError("Bad NAR Hash or Size");
    // packed chunks are durable and valid before the NAR that uses them turns valid
    await chunks.commitUpload(created);
    await transaction(db, async (tx) => {
      await markNarValid(tx, narId, seq);
      if (listing) await putNarListing(tx, narId, listing);
      await publish(tx, info, cache, narId, sub, { storedBytes: fileSize, newChunkBytes: info.nar_size - dedupBytes, newFileBytes });
    });
    return {
      kind: "Uploaded",
      file_size: fileSize,
      frac_deduplicated: info.nar_size > 0 ? dedupBytes / info.nar_size : 0,
    };
  } catch (err) {
    abort.abort();
    await tasks.settled();
    await links.abandon().catch(() => {});
    await deps.cleanup.discardNar(narId, created);
    throw asUploadError(err, pass.received, info.nar_size, "Bad NAR Hash or Size");
  } finally {
    pass.close();
  }
}

/** Store a batch of chunks, held, and queue their links into the NAR (which give up the holds). */
async function storeBatch(
  deps: ChunkedDeps,
  pass: NarPassSession,
  batch: ChunkBatch,
  firstSeq: number,
  links: ChunkLinks,
  created: CreatedChunks,
  signal: AbortSignal,
): Promise<{ fileSize: number; newFileBytes: number; dedupBytes: number }> {
  let held;
  try {
    // the claim links what it finds or creates (one transaction); only chunks claimed one at a time are left to link
    held = await deps.chunks.storeBatch(batch, (indexes) => pass.frames(batch.seq, indexes), created, signal, { narId: links.narId, firstSeq });
  } finally {
    pass.release(batch.seq);
  }
  let fileSize = 0;
  let newFileBytes = 0;
  let dedupBytes = 0;
  for (const [i, chunk] of held.entries()) {
    fileSize += chunk.fileSize;
    if (chunk.deduplicated) dedupBytes += batch.sizes[i]!;
    else newFileBytes += chunk.fileSize;
    deps.metrics.inc(chunk.deduplicated ? "attic_chunks_deduplicated_total" : "attic_chunks_uploaded_total");
  }
  // all of them at once: a failing link batch then leaves every hold with `links` to give up
  await links.add(held.flatMap((chunk, i) => (chunk.linked ? [] : [{ seq: firstSeq + i, chunkId: chunk.id }])));
  return { fileSize, newFileBytes, dedupBytes };
}
