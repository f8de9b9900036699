// The pack layer (docs/packs.md): many chunks' frames appended back to back into one pack
// file/object, above the StorageDriver seam. A driver with appendable files (local) keeps one pack
// open and grows it, and durability is an fsync shared by every waiter of the moment; any other
// driver (S3: objects cannot be appended to) holds the open pack's first bytes in memory, and once
// they pass STREAM_AFTER streams the pack into a new object (`openWrite`: the driver's reused part
// buffers, so a pack costs its parts in flight, not its size); the object is complete, and its
// bytes durable, when a waiter needs them or the pack is full. A small pack (one upload's few
// chunks) goes with one put. This module knows no database: the
// caller records packs through `PackHooks` and turns chunk rows valid once `durable` resolves.
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import { tookIn } from "../util/collect.ts";
import { putAll } from "./streams.ts";
import type { AppendFile, ObjectWriter, RemoteFile, StorageDriver } from "./types.ts";

export interface PackHooks {
  /** Record a new pack (state P) before its first byte; returns its id. */
  open(pack: { remoteFile: RemoteFile; remoteFileId: string }): Promise<number>;
  /** The pack is durable and complete: record it sealed (state V, its size and chunk count). */
  sealed(packId: number, size: number, chunks: number): Promise<void>;
  /** The pack failed before any of it was durable (so nothing can refer to it) and its object is gone: forget it. */
  discarded(packId: number): Promise<void>;
}

/** Where an appended frame went. `pack` is the writer's own handle (opaque to callers). */
export interface Placement {
  packId: number;
  offset: number;
  length: number;
  readonly pack: object;
}

/** A fresh pack key: a random UUID v4 with a `.pack` suffix (never reused). */
export function newPackKey(): string {
  return `${randomUUID()}.pack`;
}

/** Bytes being stored at once by a buffering writer, in pack sizes; appends wait beyond it (bounded memory). */
const MAX_SEALING = 2;

/**
 * A buffering writer whose driver can stream an object (`openWrite`) holds at most this many bytes
 * of the open pack before it starts the object and streams the rest (S3's streamed part size:
 * smaller packs go with one put, as a streamed object of one part would).
 */
const STREAM_AFTER = 5 * 2 ** 20;

interface Pack {
  id: number;
  remoteFile: RemoteFile;
  /** bytes appended (and written, for an appendable file) */
  size: number;
  chunks: number;
  /** appendable: the file; buffering: null */
  file: AppendFile | null;
  /**
   * buffering: the pack's bytes so far (`size` of them), copied in, held until the pack is stored
   * or streamed (a copy, so the caller's buffers are free once `append` resolves)
   */
  held: Buffer | null;
  /** buffering, past STREAM_AFTER: the object being streamed (held is then null) */
  writer: ObjectWriter | null;
  /** bytes known durable */
  synced: number;
  syncing: Promise<void> | null;
  /** set once the pack is no longer the open one: resolves when it is sealed */
  sealing: Promise<void> | null;
  failed: Error | null;
}

export class PackWriter {
  private readonly storage: StorageDriver;
  private readonly hooks: PackHooks;
  private readonly packSize: number;
  private current: Pack | null = null;
  private readonly sealing = new Set<Promise<void>>();
  /** bytes of the packs in `sealing` */
  private sealingBytes = 0;
  /** the streamed packs among `sealing` (their objects' last parts in flight) */
  private readonly streamed = new Set<Promise<void>>();
  /** appends run one after another */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(storage: StorageDriver, hooks: PackHooks, opts: { packSize: number }) {
    this.storage = storage;
    this.hooks = hooks;
    this.packSize = opts.packSize;
  }

  /**
   * Append frames back to back, in order. They land contiguous in one pack when they fit (a
   * frame larger than the pack size gets a pack of its own). Resolves once they are written (not
   * yet durable: see `durable`); the frames are then copied or written, and no longer read.
   */
  append(frames: readonly Uint8Array[]): Promise<Placement[]> {
    const run = this.tail.then(() => this.appendNow(frames));
    this.tail = run.catch(() => {});
    return run;
  }

  private async appendNow(frames: readonly Uint8Array[]): Promise<Placement[]> {
    if (this.closed) throw new Error("pack writer is closed");
    const total = frames.reduce((n, f) => n + f.byteLength, 0);
    if (this.current && this.current.size > 0 && this.current.size + total > this.packSize) this.rotate();
    // an open pack file removed or replaced behind our back (found lost by a download): appends
    // would go nowhere; its waiters fail, and a new pack takes these frames
    if (this.current?.file && !(await this.current.file.intact())) {
      const lost = this.current;
      lost.failed ??= new Error(`pack ${lost.id} was removed or replaced while open`);
      this.current = null;
      await lost.file!.close().catch(() => {});
      if (lost.synced === 0) await this.hooks.discarded(lost.id).catch(() => {});
    }
    const pack = this.current ?? (await this.openPack());
    const placements: Placement[] = [];
    let offset = pack.size;
    for (const f of frames) {
      placements.push({ packId: pack.id, offset, length: f.byteLength, pack });
      offset += f.byteLength;
    }
    if (pack.file) {
      try {
        await pack.file.append(frames);
      } catch (err) {
        // what was written of this pack stays, the rest of it is unusable: a new pack next time
        pack.failed = err as Error;
        if (this.current === pack) this.current = null;
        await pack.file.close().catch(() => {});
        await this.discardIfUnused(pack);
        throw err;
      }
    } else {
      try {
        await this.hold(pack, frames, offset);
      } catch (err) {
        pack.failed ??= err as Error;
        if (this.current === pack) this.current = null;
        pack.held = null;
        await pack.writer?.abort().catch(() => {});
        await this.discardIfUnused(pack);
        throw err;
      }
    }
    pack.size = offset;
    pack.chunks += frames.length;
    if (pack.size >= this.packSize) this.rotate();
    return placements;
  }

  /**
   * A buffering pack takes frames: copied into its held bytes, or written to its streamed object
   * (started once the pack grows past STREAM_AFTER; the driver copies them). Either way the
   * caller's buffers are not retained.
   */
  private async hold(pack: Pack, frames: readonly Uint8Array[], end: number): Promise<void> {
    if (!pack.writer && this.storage.openWrite && end > STREAM_AFTER) {
      // one streamed object at a time: the driver's part buffers in flight are one upload's
      // (a pack still completing would double them)
      while (this.streamed.size > 0) await Promise.race(this.streamed).catch(() => {});
      pack.writer = this.storage.openWrite(pack.remoteFile);
      const held = pack.held;
      pack.held = null;
      if (held) {
        await pack.writer.write(held.subarray(0, pack.size));
        free(held);
      }
    }
    if (pack.writer) {
      for (const f of frames) await pack.writer.write(f);
      return;
    }
    let at = pack.size;
    if (!pack.held || pack.held.length < end) {
      // grown by doubling (a small pack, one upload's few chunks, holds little), up to what streams
      const limit = this.storage.openWrite ? STREAM_AFTER : this.packSize;
      const grown = Buffer.allocUnsafeSlow(Math.max(end, Math.min(2 * (pack.held?.length ?? 0), limit), 64 * 1024));
      if (pack.held) {
        pack.held.copy(grown, 0, 0, pack.size);
        free(pack.held);
      }
      pack.held = grown;
    }
    for (const f of frames) {
      pack.held.set(f, at);
      at += f.byteLength;
    }
  }

  private async openPack(): Promise<Pack> {
    // a buffering writer holds at most MAX_SEALING packs' worth of bytes being stored besides the
    // open pack (many small packs, one per upload completion, are stored side by side)
    while (this.sealing.size > 0 && this.sealingBytes >= MAX_SEALING * this.packSize) await Promise.race(this.sealing).catch(() => {});
    const { remoteFile, remoteFileId } = this.storage.remoteFileFor(newPackKey());
    const id = await this.hooks.open({ remoteFile, remoteFileId });
    const file = this.storage.openAppend ? await this.storage.openAppend(remoteFile) : null;
    const pack: Pack = { id, remoteFile, size: 0, chunks: 0, file, held: null, writer: null, synced: 0, syncing: null, sealing: null, failed: null };
    this.current = pack;
    return pack;
  }

  /** The open pack stops taking appends and is sealed in the background. */
  private rotate(): void {
    const pack = this.current;
    if (!pack) return;
    this.current = null;
    const sealing = this.seal(pack);
    pack.sealing = sealing;
    // the main thread's garbage per pack (the database driver's rows and protocol buffers, the S3
    // SDK's requests) is collected here rather than when V8 gets round to it: with PostgreSQL its
    // heap otherwise grew to some 100 MiB of mostly garbage during a long push (collect.ts: one full
    // collection per 128 MiB of pack bytes on the main thread)
    tookIn(pack.size);
    this.sealing.add(sealing);
    const bytes = pack.file ? 0 : pack.size;
    this.sealingBytes += bytes;
    if (pack.writer) this.streamed.add(sealing);
    const settled = () => {
      this.sealing.delete(sealing);
      this.streamed.delete(sealing);
      this.sealingBytes -= bytes;
    };
    sealing.then(settled, settled);
  }

  private async seal(pack: Pack): Promise<void> {
    try {
      if (pack.file) {
        await this.syncTo(pack, pack.size);
        await pack.file.close();
      } else if (pack.writer) {
        await pack.writer.finish();
        pack.synced = pack.size;
      } else {
        const held = pack.held;
        pack.held = null;
        await putAll(this.storage, [{ remoteFile: pack.remoteFile, data: held?.subarray(0, pack.size) ?? Buffer.alloc(0) }]);
        // stored, and read by no one any more (on a failure a request might still be sending it)
        if (held) free(held);
        pack.synced = pack.size;
      }
    } catch (err) {
      pack.failed ??= err as Error;
      await pack.file?.close().catch(() => {});
      await pack.writer?.abort().catch(() => {});
      await this.discardIfUnused(pack);
      throw err;
    }
    await this.hooks.sealed(pack.id, pack.size, pack.chunks);
  }

  /**
   * A failed pack none of whose bytes were ever durable: no chunk can refer to it (chunks turn
   * valid only after a sync or a seal), so its file and row go now (a full disk gets its room back).
   */
  private async discardIfUnused(pack: Pack): Promise<void> {
    if (pack.synced > 0) return;
    try {
      const { failed } = await this.storage.deleteMany([pack.remoteFile]);
      if (failed.length === 0) await this.hooks.discarded(pack.id);
    } catch {
      // left for compaction: the row says where it is
    }
  }

  /** An fsync covering at least `need` bytes; waiters arriving during one fsync share the next. */
  private async syncTo(pack: Pack, need: number): Promise<void> {
    while (pack.synced < need) {
      if (pack.failed) throw pack.failed;
      if (pack.syncing) {
        await pack.syncing.catch(() => {});
        continue;
      }
      const target = pack.size;
      const syncing = pack.file!.sync().then(
        () => {
          pack.synced = Math.max(pack.synced, target);
        },
        (err: unknown) => {
          pack.failed ??= err as Error;
          if (this.current === pack) this.current = null;
          throw err;
        },
      );
      pack.syncing = syncing.finally(() => (pack.syncing = null));
      await pack.syncing;
    }
  }

  /**
   * Resolves once every placement's bytes are durable: fsynced (appendable files) or in a stored
   * pack (buffering: the open pack holding any of them is sealed now). Rejects when a pack
   * holding them could not be written.
   */
  async durable(placements: readonly Placement[]): Promise<void> {
    const need = new Map<Pack, number>();
    for (const p of placements) {
      const pack = p.pack as Pack;
      need.set(pack, Math.max(need.get(pack) ?? 0, p.offset + p.length));
    }
    await Promise.all(
      [...need].map(async ([pack, end]) => {
        if (pack.failed) throw pack.failed;
        if (pack.synced >= end) return;
        if (pack.file) return this.syncTo(pack, end);
        // appends run in order: wait for the one writing this pack, if any, before sealing it
        if (pack === this.current) await this.tail;
        if (pack === this.current) this.rotate();
        await pack.sealing;
      }),
    );
  }

  /** Seal the open pack (if any) and wait for every pack being sealed. */
  async flush(): Promise<void> {
    await this.tail;
    this.rotate();
    await Promise.all([...this.sealing]);
  }

  async close(): Promise<void> {
    await this.flush().catch(() => {});
    this.closed = true;
  }
}

/** Our own held bytes, read by no one any more: freed now rather than at V8's next collection. */
function free(held: Buffer): void {
  (held.buffer as ArrayBuffer).transfer(0);
}

/** What reading one chunk needs: its own object, or its pack and place in it. */
export interface ChunkLocation {
  /** the chunk's own object (upstream's layout; absent while packed) */
  remoteFile: RemoteFile;
  pack: { remoteFile: RemoteFile; offset: number } | null;
  /** stored bytes (file_size) */
  size: number | null;
}

/** A stream of one chunk's stored bytes, packed or one object. */
export async function openChunk(storage: StorageDriver, chunk: ChunkLocation, signal?: AbortSignal): Promise<Readable> {
  if (chunk.pack) {
    if (chunk.size === null) throw new Error("a packed chunk without a recorded size");
    return storage.getRange(chunk.pack.remoteFile, chunk.pack.offset, chunk.size, signal);
  }
  return storage.get(chunk.remoteFile, signal, chunk.size ?? undefined);
}
