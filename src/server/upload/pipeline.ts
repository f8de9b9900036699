// PUT /_api/v1/upload-path after auth: NAR-level dedup, or one streaming pass that verifies the
// NAR (structure, hash, size), splits it by content, compresses and stores each chunk once for
// all caches, and only then makes the object visible. A failed or aborted upload removes what it
// wrote. Memory stays bounded: at most CHUNK_BATCH × BATCHES_IN_FLIGHT chunks are in flight.
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { chain } from "../streams.ts";
import type { UploadPathResult } from "../../api/v1.ts";
import { createCompressor } from "../../compression/index.ts";
import type { Db } from "../../db/connect.ts";
import { transaction } from "../../db/connect.ts";
import { markChunkValid, releaseChunk, releaseChunks } from "../../db/queries/chunks.ts";
import { claimNar, deletePendingNar, findAndLockNar, insertChunkRef, insertNar, markNarValid, narHasMissingChunks, releaseNar } from "../../db/queries/nars.ts";
import { upsertObject } from "../../db/queries/objects.ts";
import { narStoredBytes, recordPush, type PushFigures } from "../../db/queries/stats.ts";
import { putNarListing } from "../../db/queries/nix-files.ts";
import type { CacheRow } from "../../db/schema.ts";
import { NarError, NarValidator } from "../../nix/nar/parse.ts";
import type { StorageDriver } from "../../storage/types.ts";
import { TaskSet } from "../../util/concurrency.ts";
import type { Config } from "../config/types.ts";
import { requestError, unavailableReason } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import type { BodyReader } from "./body.ts";
import { BUSY_POLL_MS, BUSY_WINDOW_MS, ChunkStore, type CreatedChunks } from "./chunks.ts";
import { NarChunker, type HashedChunk } from "./chunker.ts";
import { ChunkLinks } from "./links.ts";
import { LeftoverCleanup } from "./leftovers.ts";
import { ByteCounter, hashStream } from "./hashing.ts";
import type { UploadInfo } from "./info.ts";
import { ListingTap } from "./listing-tap.ts";

/**
 * Chunks are claimed in batches (one transaction each) and up to BATCHES_IN_FLIGHT batches are
 * compressed and written at once: at most 96 chunks (each ≤ chunking.max-size, 64 KiB on
 * average) per upload in memory. A batch spends most of its time waiting for its files to be
 * durable (fsync latency; measured with per-batch timestamps of claim, compress, write and mark
 * valid), so with 2 in flight the chunker waited on storage for 80 % of the upload; 8 kept it
 * busy but took the 512 MiB memory test to 298 of its 300 MiB, so 6. Upstream stores 10 chunks
 * at a time, one by one.
 */
const CHUNK_BATCH = 16;
const DEFAULT_PACK_SIZE = 64 * 1024 * 1024;
/** a NAR stored unchunked up to this size goes into a pack; a larger one stays a whole object (redirectable) */
const PACK_WHOLE_MAX = 4 * 1024 * 1024;
const BATCHES_IN_FLIGHT = 6;

export class Uploader {
  private readonly chunks: ChunkStore;
  /** in-process uploads of the same NAR wait for the first instead of storing it again */
  private readonly inflight = new Map<string, Promise<void>>();
  /** cleanups of uploads that lost the database, run again once it is back */
  private readonly leftovers = new LeftoverCleanup(BUSY_WINDOW_MS);

  private readonly db: Db;
  private readonly storage: StorageDriver;
  private readonly config: Config;
  private readonly metrics: Metrics;

  constructor(db: Db, storage: StorageDriver, config: Config, metrics: Metrics) {
    this.db = db;
    this.storage = storage;
    this.config = config;
    this.metrics = metrics;
    this.chunks = new ChunkStore(
      db,
      storage,
      { type: config.compression.type, level: config.compression.level, narinfoName: config.compression.narinfoName },
      { packs: config.storage.packs ?? true, packSize: config.storage.packSize ?? DEFAULT_PACK_SIZE },
    );
  }

  /** Drop the cleanups not yet run and seal the open pack (shutdown). */
  async close(): Promise<void> {
    this.leftovers.close();
    await this.chunks.close();
  }

  async upload(info: UploadInfo, cache: CacheRow, body: BodyReader, sub: string | null): Promise<UploadPathResult> {
    const narHash = info.narHash.toTypedBase16();
    for (;;) {
      const dedup = await this.tryDedup(narHash, info, cache, body, sub);
      if (dedup) return dedup;
      const other = this.inflight.get(narHash);
      if (!other) break;
      await other;
    }
    let done!: () => void;
    this.inflight.set(narHash, new Promise<void>((r) => (done = r)));
    try {
      // a NAR found valid but incomplete (a lost chunk) is uploaded again rather than waited for
      let ignoreValid = false;
      for (;;) {
        // another process may have finished the same NAR between our lookup and the claim
        const dedup = await this.tryDedup(narHash, info, cache, body, sub);
        if (dedup) return dedup;
        const threshold = this.config.chunking.narSizeThreshold;
        const chunked = threshold !== 0 && info.nar_size >= threshold;
        let result: UploadPathResult;
        if (chunked) {
          const claim = await claimNar(
            this.db,
            { nar_hash: narHash, nar_size: info.nar_size, compression: this.config.compression.narinfoName, num_chunks: 0 },
            { busyAfter: new Date(Date.now() - BUSY_WINDOW_MS), ignoreValid },
          );
          if (claim.kind === "valid") {
            ignoreValid = true;
            continue;
          }
          if (claim.kind === "busy") {
            // another replica is storing this NAR right now: dedup against it once it is done
            await sleep(BUSY_POLL_MS);
            continue;
          }
          result = await this.uploadChunked(info, cache, body, sub, claim.id);
        } else {
          result = await this.uploadWhole(info, cache, body, sub);
        }
        this.metrics.inc("attic_uploads_total");
        this.metrics.inc("attic_upload_bytes_total", info.nar_size);
        return result;
      }
    } finally {
      this.inflight.delete(narHash);
      done();
    }
  }

  /**
   * Without proof of possession, an upload session for a NAR the server has is answered at once
   * (upstream's PR #342 does the same); null when a session is needed.
   */
  async dedupWithoutProof(info: UploadInfo, cache: CacheRow, sub: string | null): Promise<UploadPathResult | null> {
    if (this.config.requireProofOfPossession) return null;
    return this.tryDedup(info.narHash.toTypedBase16(), info, cache, null, sub);
  }

  /** NAR-level dedup: a valid, complete NAR with this hash exists in any cache. */
  private async tryDedup(narHash: string, info: UploadInfo, cache: CacheRow, body: BodyReader | null, sub: string | null): Promise<UploadPathResult | null> {
    const nar = await findAndLockNar(this.db, narHash);
    if (!nar) return null;
    try {
      if (await narHasMissingChunks(this.db, nar.id)) return null;
      if (this.config.requireProofOfPossession) {
        if (!body) return null;
        const proof = await hashStream(body.take(info.nar_size));
        if (!proof.hash.equals(info.narHash) || proof.size !== info.nar_size || nar.nar_size !== info.nar_size) {
          throw requestError("Bad NAR Hash or Size");
        }
      } else if (nar.nar_size !== info.nar_size) {
        throw requestError("Bad NAR Hash or Size");
      }
      const storedBytes = await narStoredBytes(this.db, nar.id);
      await transaction(this.db, (tx) => publish(tx, info, cache, nar.id, sub, { storedBytes, newChunkBytes: 0, newFileBytes: 0 }));
      this.metrics.inc("attic_uploads_deduplicated_total");
      return { kind: "Deduplicated", frac_deduplicated: null };
    } finally {
      await releaseNar(this.db, nar.id);
    }
  }

  private async uploadChunked(info: UploadInfo, cache: CacheRow, body: BodyReader, sub: string | null, narId: number): Promise<UploadPathResult> {
    const created: CreatedChunks = [];
    const links = new ChunkLinks(this.db, narId);
    const abort = new AbortController();
    const tasks = new TaskSet(BATCHES_IN_FLIGHT);
    let firstError: unknown = null;
    let fileSize = 0;
    let newFileBytes = 0;
    let dedupBytes = 0;
    let seq = 0;
    const listing = new ListingTap();
    const chunker = new NarChunker(listing.tap(body.take(info.nar_size)), this.config.chunking);
    try {
      let batch: HashedChunk[] = [];
      const launch = () => {
        const items = batch;
        const firstSeq = seq;
        batch = [];
        seq += items.length;
        const task = this.storeBatch(items, firstSeq, links, created, abort.signal).then(
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
      };
      for await (const chunk of chunker.chunks()) {
        if (firstError) break;
        batch.push(chunk);
        if (batch.length < CHUNK_BATCH) continue;
        launch();
        await tasks.room();
      }
      if (batch.length > 0 && !firstError) launch();
      await tasks.settled();
      if (firstError) throw firstError;
      await links.flush();
      const { narHash, narSize } = chunker.result();
      if (!narHash.equals(info.narHash) || narSize !== info.nar_size) throw requestError("Bad NAR Hash or Size");
      const ls = await listing.compressed();
      // packed chunks are durable and valid before the NAR that uses them turns valid
      await this.chunks.commitUpload(created);
      await transaction(this.db, async (tx) => {
        await markNarValid(tx, narId, seq);
        if (ls) await putNarListing(tx, narId, ls);
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
      await this.discardNar(narId, created);
      throw asUploadError(err, chunker.received, info.nar_size, "Bad NAR Hash or Size");
    }
  }

  /** Store a batch of chunks, held, and queue their links into the NAR (which give up the holds). */
  private async storeBatch(
    items: HashedChunk[],
    firstSeq: number,
    links: ChunkLinks,
    created: CreatedChunks,
    signal: AbortSignal,
  ): Promise<{ fileSize: number; newFileBytes: number; dedupBytes: number }> {
    const held = await this.chunks.storeBatch(items, created, signal);
    let fileSize = 0;
    let newFileBytes = 0;
    let dedupBytes = 0;
    for (const [i, chunk] of held.entries()) {
      fileSize += chunk.fileSize;
      if (chunk.deduplicated) dedupBytes += items[i]!.data.length;
      else newFileBytes += chunk.fileSize;
      this.metrics.inc(chunk.deduplicated ? "attic_chunks_deduplicated_total" : "attic_chunks_uploaded_total");
    }
    // all of them at once: a failing link batch then leaves every hold with `links` to give up
    await links.add(held.map((chunk, i) => ({ seq: firstSeq + i, chunkId: chunk.id })));
    return { fileSize, newFileBytes, dedupBytes };
  }

  /** Below the chunking threshold: the whole NAR is one chunk, streamed through compression to storage. */
  private async uploadWhole(info: UploadInfo, cache: CacheRow, body: BodyReader, sub: string | null): Promise<UploadPathResult> {
    const compression = this.config.compression;
    const created: CreatedChunks = [];
    const counter = new ByteCounter();
    let narId: number | null = null;
    try {
      const pending = await this.chunks.insertPending(info.narHash.toTypedBase16(), info.nar_size, created);
      const validator = new NarValidator();
      const fileCounter = new ByteCounter(true);
      const listing = new ListingTap();
      const stream = chain(Readable.from(listing.tap(body.take(info.nar_size))), counter, validator, createCompressor(compression.type, compression.level), fileCounter);
      // a small one goes into the open pack (docs/packs.md); a large one stays a whole object
      const packed = this.chunks.packing && info.nar_size <= PACK_WHOLE_MAX;
      let frame: Buffer | null = null;
      if (packed) {
        const pieces: Buffer[] = [];
        for await (const piece of stream as AsyncIterable<Buffer>) pieces.push(piece);
        frame = Buffer.concat(pieces);
      } else {
        await this.storage.put(pending.remoteFile, stream);
      }
      const { narHash, narSize } = validator.result();
      if (!narHash.equals(info.narHash) || narSize !== info.nar_size) throw requestError("Bad chunk hash or size");
      if (frame) {
        await this.chunks.appendWhole(created, pending.id, frame, fileCounter.typedHash());
        await this.chunks.commitUpload(created);
      } else {
        await markChunkValid(this.db, pending.id, { fileHash: fileCounter.typedHash(), fileSize: fileCounter.bytes });
      }
      const ls = await listing.compressed();
      await transaction(this.db, async (tx) => {
        narId = await insertNar(tx, { state: "V", nar_hash: info.narHash.toTypedBase16(), nar_size: info.nar_size, compression: compression.narinfoName, num_chunks: 1 });
        await insertChunkRef(tx, narId, 0, pending.id);
        if (ls) await putNarListing(tx, narId, ls);
        const fileSize = fileCounter.bytes;
        await publish(tx, info, cache, narId, sub, { storedBytes: fileSize, newChunkBytes: info.nar_size, newFileBytes: fileSize });
      });
      await releaseChunk(this.db, pending.id);
      this.metrics.inc("attic_chunks_uploaded_total");
      return { kind: "Uploaded", file_size: fileCounter.bytes, frac_deduplicated: null };
    } catch (err) {
      await releaseChunks(this.db, created.map((c) => c.id)).catch(() => {});
      await this.chunks.discard(created).catch((e: unknown) => this.cleanUpLater(null, created, e));
      throw asUploadError(err, counter.bytes, info.nar_size, "Bad chunk hash or size");
    }
  }

  private async discardNar(narId: number, created: CreatedChunks): Promise<void> {
    try {
      // pending only: had the final commit gone through unseen (the connection lost during it), the NAR is valid and stays
      await deletePendingNar(this.db, narId);
      await this.chunks.discard(created);
    } catch (err) {
      this.cleanUpLater(narId, created, err);
    }
  }

  /**
   * The cleanup failed. When the database was unreachable (a restart), it runs again once the
   * database is back, so that a retry of the push does not wait for our pending rows to go stale.
   * Otherwise GC reaps pending rows after the grace period.
   */
  private cleanUpLater(narId: number | null, created: CreatedChunks, err: unknown): void {
    if (!unavailableReason(err)) return;
    this.leftovers.schedule(async () => {
      if (narId !== null) await deletePendingNar(this.db, narId);
      await this.chunks.discard(created);
    });
  }
}

/** Structural NAR errors on a short body are reported as upstream reports a short body. */
function asUploadError(err: unknown, received: number, claimed: number, shortMessage: string): unknown {
  if (err instanceof NarError) {
    if (received < claimed) return requestError(shortMessage);
    return requestError(`Invalid NAR: ${err.message}`);
  }
  return err;
}

/** Make the object visible and count the push for the dashboard, in the caller's transaction. */
async function publish(
  tx: Db,
  info: UploadInfo,
  cache: CacheRow,
  narId: number,
  sub: string | null,
  figures: Pick<PushFigures, "storedBytes" | "newChunkBytes" | "newFileBytes">,
): Promise<void> {
  await recordPush(tx, { cacheId: cache.id, storePathHash: info.store_path_hash, narId, narSize: info.nar_size, ...figures });
  await upsertObject(tx, objectRow(info, cache, narId, sub));
}

function objectRow(info: UploadInfo, cache: CacheRow, narId: number, sub: string | null) {
  return {
    cache_id: cache.id,
    nar_id: narId,
    store_path_hash: info.store_path_hash,
    store_path: info.store_path,
    references: JSON.stringify(info.references),
    deriver: info.deriver ?? null,
    sigs: JSON.stringify(info.sigs),
    ca: info.ca ?? null,
    created_by: sub,
  };
}

