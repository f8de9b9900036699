// Storing one chunk: found by (hash, compression) and held, or compressed, written to storage
// and recorded. Rows are inserted as pending (P) with the uploader's hold (holders_count 1) so
// neither GC nor a failed upload elsewhere can take them; the caller releases the hold once the
// chunkref that keeps the chunk alive exists.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { compressBufferHashed, type CompressionType } from "../../compression/index.ts";
import type { Db } from "../../db/connect.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { claimChunk, claimChunks, discardDeadPendingChunks, discardUnusedChunks, existingRemoteFileIds, insertPendingChunk, markChunkValid, markChunksValid, releaseChunk, releaseChunks } from "../../db/queries/chunks.ts";
import { deleteChunkRows } from "../../db/queries/gc.ts";
import { newChunkKey, newChunkKeys, putAll } from "../../storage/index.ts";
import { remoteFileId } from "../../storage/remote-file.ts";
import type { RemoteFile, StorageDriver } from "../../storage/types.ts";
import type { HashedChunk } from "./chunker.ts";

/** a pending NAR or chunk younger than this is being written by another upload: wait for it */
export const BUSY_WINDOW_MS = 120_000;
export const BUSY_POLL_MS = 100;

export interface HeldChunk {
  id: number;
  /** compressed size */
  fileSize: number;
  deduplicated: boolean;
}

export interface CreatedChunk {
  id: number;
  remoteFile: RemoteFile;
}

/** The chunk rows an upload inserted, with where their files go: what it must clean up if it fails. */
export type CreatedChunks = CreatedChunk[];

export function sha256Typed(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

export class ChunkStore {
  /** in-process uploads of the same chunk wait for each other instead of storing it twice */
  private readonly inflight = new Map<string, Promise<unknown>>();

  private readonly db: Db;
  private readonly storage: StorageDriver;
  private readonly compression: { type: CompressionType; level: number; narinfoName: string };

  constructor(db: Db, storage: StorageDriver, compression: { type: CompressionType; level: number; narinfoName: string }) {
    this.db = db;
    this.storage = storage;
    this.compression = compression;
  }

  /**
   * Store (or find) a batch of chunks of server-chunked data (hashes computed here, so dedup is
   * trusted): one transaction claims them all, new ones are compressed and written concurrently,
   * one transaction marks them valid. Chunks another upload in this process is writing, repeats
   * within the batch and chunks another replica is writing take the one-at-a-time path. Every
   * chunk comes back held, in order; if the batch fails, it gives up the holds it took first.
   */
  async storeBatch(chunks: readonly HashedChunk[], created: CreatedChunks, signal: AbortSignal): Promise<HeldChunk[]> {
    const hashes = chunks.map((c) => c.hash);
    const items = chunks.map((c) => c.data);
    const results: HeldChunk[] = new Array<HeldChunk>(items.length);
    /** ids this batch holds right now: given up if it fails */
    const held: number[] = [];
    const claimed: number[] = [];
    const slow: number[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < items.length; i++) {
      if (this.inflight.has(this.keyOf(hashes[i]!)) || seen.has(hashes[i]!)) slow.push(i);
      else {
        seen.add(hashes[i]!);
        claimed.push(i);
      }
    }
    // one shard directory for the batch's new files: one directory sync makes them all durable
    const files = newChunkKeys(claimed.length).map((key) => this.storage.remoteFileFor(key));
    const claims = await claimChunks(
      this.db,
      claimed.map((i, k) => ({
        chunk_hash: hashes[i]!,
        chunk_size: items[i]!.length,
        compression: this.compression.narinfoName,
        remote_file: JSON.stringify(files[k]!.remoteFile),
        remote_file_id: files[k]!.remoteFileId,
        holders_count: 1,
      })),
      new Date(Date.now() - BUSY_WINDOW_MS),
    );
    const fresh: { i: number; id: number; remoteFile: RemoteFile }[] = [];
    const writing: string[] = [];
    claims.forEach((claim, k) => {
      const i = claimed[k]!;
      if (claim.kind === "found") {
        held.push(claim.chunk.id);
        results[i] = { id: claim.chunk.id, fileSize: claim.chunk.file_size ?? 0, deduplicated: true };
      } else if (claim.kind === "busy") {
        slow.push(i);
      } else {
        created.push({ id: claim.id, remoteFile: files[k]!.remoteFile });
        held.push(claim.id);
        writing.push(this.keyOf(hashes[i]!));
        fresh.push({ i, id: claim.id, remoteFile: files[k]!.remoteFile });
      }
    });
    // only chunks found new are compressed; others wanting them wait until they are valid, then
    // find them; the entries go as soon as it settles (before any waiter resumes), not when the
    // whole batch ends: a repeat in this batch waits on it below
    const stored: Promise<void> = this.writeFresh(items, fresh, results, signal)
      .then((valid) => markChunksValid(this.db, valid))
      .finally(() => {
        for (const key of writing) if (this.inflight.get(key) === stored) this.inflight.delete(key);
      });
    for (const key of writing) this.inflight.set(key, stored);
    const slowWork = slow.map(async (i) => {
      results[i] = await this.storeBuffer(items[i]!, created, signal, hashes[i]);
      held.push(results[i].id);
    });
    try {
      const outcome = await Promise.allSettled([stored, ...slowWork]);
      const failure = outcome.find((o) => o.status === "rejected");
      if (failure) throw failure.reason;
      return results;
    } catch (err) {
      await releaseChunks(this.db, held).catch(() => {});
      throw err;
    }
  }

  private keyOf(chunkHash: string): string {
    return `${chunkHash}/${this.compression.narinfoName}`;
  }

  /** Compress the batch's new chunks and write their files together; their rows are marked valid by the caller. */
  private async writeFresh(
    items: readonly Buffer[],
    fresh: readonly { i: number; id: number; remoteFile: RemoteFile }[],
    results: HeldChunk[],
    signal: AbortSignal,
  ): Promise<{ id: number; fileHash: string; fileSize: number }[]> {
    if (fresh.length === 0) return [];
    const compressed = await Promise.all(fresh.map((f) => compressBufferHashed(this.compression.type, this.compression.level, items[f.i]!)));
    await putAll(this.storage, fresh.map((f, j) => ({ remoteFile: f.remoteFile, data: compressed[j]!.data })), signal);
    return fresh.map((f, j) => {
      const fileSize = compressed[j]!.data.length;
      results[f.i] = { id: f.id, fileSize, deduplicated: false };
      return { id: f.id, fileHash: `sha256:${compressed[j]!.sha256}`, fileSize };
    });
  }

  /** Compress a new chunk and write its file; its row is marked valid by the caller. */
  private async compressAndPut(data: Buffer, remoteFile: RemoteFile, signal: AbortSignal): Promise<{ fileHash: string; fileSize: number }> {
    const compressed = await compressBufferHashed(this.compression.type, this.compression.level, data);
    await this.storage.put(remoteFile, Readable.from([compressed.data]), signal);
    return { fileHash: `sha256:${compressed.sha256}`, fileSize: compressed.data.length };
  }

  /**
   * Store (or find) one chunk of server-chunked data; its hash was computed here (`chunkHash`,
   * when the caller has it already), so dedup is trusted.
   */
  async storeBuffer(data: Buffer, created: CreatedChunks, signal: AbortSignal, chunkHash = sha256Typed(data)): Promise<HeldChunk> {
    const key = this.keyOf(chunkHash);
    for (;;) {
      const other = this.inflight.get(key);
      if (other) {
        await other.catch(() => {});
        // a settled entry left behind must not turn this into a loop that never yields
        if (this.inflight.get(key) === other) this.inflight.delete(key);
        continue;
      }
      const { remoteFile, remoteFileId } = this.storage.remoteFileFor(newChunkKey());
      const claim = await claimChunk(
        this.db,
        {
          chunk_hash: chunkHash,
          chunk_size: data.length,
          compression: this.compression.narinfoName,
          remote_file: JSON.stringify(remoteFile),
          remote_file_id: remoteFileId,
          holders_count: 1,
        },
        new Date(Date.now() - BUSY_WINDOW_MS),
      );
      if (claim.kind === "found") return { id: claim.chunk.id, fileSize: claim.chunk.file_size ?? 0, deduplicated: true };
      if (claim.kind === "busy") {
        // another replica is writing this chunk: use its copy once it is valid
        signal.throwIfAborted();
        await sleep(BUSY_POLL_MS);
        continue;
      }
      const mine = { id: claim.id, remoteFile };
      created.push(mine);
      const work = this.writeNew(data, mine, signal);
      this.inflight.set(key, work);
      try {
        return await work;
      } finally {
        this.inflight.delete(key);
      }
    }
  }

  private async writeNew(data: Buffer, pending: CreatedChunk, signal: AbortSignal): Promise<HeldChunk> {
    try {
      const file = await this.compressAndPut(data, pending.remoteFile, signal);
      await markChunkValid(this.db, pending.id, file);
      return { id: pending.id, fileSize: file.fileSize, deduplicated: false };
    } catch (err) {
      // give up our hold so that discard() (or GC) can remove the row and its file
      await releaseChunk(this.db, pending.id).catch(() => {});
      throw err;
    }
  }

  /** A new pending chunk row (held by us) and where its file goes. */
  async insertPending(chunkHash: string, chunkSize: number, created: CreatedChunks): Promise<CreatedChunk> {
    const { remoteFile, remoteFileId } = this.storage.remoteFileFor(newChunkKey());
    const id = await insertPendingChunk(this.db, {
      chunk_hash: chunkHash,
      chunk_size: chunkSize,
      compression: this.compression.narinfoName,
      remote_file: JSON.stringify(remoteFile),
      remote_file_id: remoteFileId,
      holders_count: 1,
    });
    created.push({ id, remoteFile });
    return { id, remoteFile };
  }

  /**
   * After a failed upload, once its writes have settled: drop the chunks it created unless another
   * upload has started using them meanwhile (then they live on). Those still pending go whatever
   * their holds say (a release lost with the database must not keep them "busy" for others).
   * Rows are marked deleted first, then their files go, then the rows; a file that cannot be
   * deleted now stays marked for GC. A created row that is gone altogether was reaped by GC (an
   * upload that outlived the stale grace period), maybe while its file was still being written:
   * that file, under a key no other row uses, is deleted here, or nothing ever would.
   */
  async discard(created: CreatedChunks): Promise<void> {
    const ids = created.map((c) => c.id);
    const marked = [...(await discardDeadPendingChunks(this.db, ids)), ...(await discardUnusedChunks(this.db, ids))];
    const files = marked.map((c) => ({ id: c.id, remoteFile: JSON.parse(c.remote_file) as RemoteFile }));
    const live = await existingRemoteFileIds(this.db, created.map((c) => remoteFileId(c.remoteFile)));
    const reaped = created.filter((c) => !live.has(remoteFileId(c.remoteFile))).map((c) => c.remoteFile);
    if (files.length === 0 && reaped.length === 0) return;
    const { failed } = await this.storage.deleteMany([...files.map((f) => f.remoteFile), ...reaped]);
    const kept = new Set(failed.map((f) => remoteFileId(f.remoteFile)));
    await deleteChunkRows(this.db, files.filter((f) => !kept.has(remoteFileId(f.remoteFile))).map((f) => f.id));
  }
}
