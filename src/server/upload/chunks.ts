// Storing one chunk: found by (hash, compression) and held, or compressed, written to storage
// and recorded. Rows are inserted as pending (P) with the uploader's hold (holders_count 1) so
// neither GC nor a failed upload elsewhere can take them; the caller releases the hold once the
// chunkref that keeps the chunk alive exists.
import { Readable } from "node:stream";
import type { CompressionType } from "../../compression/index.ts";
import type { Db } from "../../db/connect.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { claimChunk, claimChunks, discardDeadPendingChunks, discardUnusedChunks, existingRemoteFileIds, insertPendingChunk, markChunkValid, markChunksValid, releaseChunk, releaseChunks } from "../../db/queries/chunks.ts";
import { deleteChunkRows } from "../../db/queries/gc.ts";
import { newChunkKey, newChunkKeys, putAll } from "../../storage/index.ts";
import { remoteFileId } from "../../storage/remote-file.ts";
import type { RemoteFile, StorageDriver } from "../../storage/types.ts";
import { PackWriter, type Placement } from "../../storage/packs.ts";
import { holdChunk, markPackedSlicesValid, type PackedChunks } from "../../db/queries/packs.ts";
import { leasedPackHooks } from "./pack-leases.ts";
import type { ChunkBatch, StoredFrame } from "./nar-pass.ts";
import { release as releaseMoved } from "../../util/moved.ts";

/** a pending NAR or chunk younger than this is being written by another upload: wait for it */
export const BUSY_WINDOW_MS = 120_000;
export const BUSY_POLL_MS = 100;

export interface HeldChunk {
  id: number;
  /** compressed size */
  fileSize: number;
  deduplicated: boolean;
  /** already linked into the NAR by its claim (storeBatch's `link`): no hold to give up, no link to write */
  linked?: boolean;
}

/** Where storeBatch links what its claim finds or creates: the pending NAR and the batch's first position in it. */
export interface BatchLink {
  narId: number;
  firstSeq: number;
}

/**
 * Chunks appended to a pack together (docs/packs.md), one append: their rows are still pending;
 * they turn valid together, once their bytes are durable, when an upload that uses them commits.
 * Kept in columns, not an object per chunk: an upload keeps every chunk it appended until it
 * commits, some 16,000 per GiB of new NAR (objects, placements and hash strings per chunk were
 * about 10 MiB of the main heap per GiB).
 */
const SHA256_HEX = /^sha256:[0-9a-f]{64}$/;

export class PackedGroup {
  /** where the frames lie: back to back in one pack from `placement.offset`, `placement.length` bytes in all */
  readonly placement: Placement;
  readonly ids: readonly number[];
  /** each frame's stored size */
  readonly lengths: readonly number[];
  /** each frame's SHA-256, 32 bytes each (the typed hex strings, should one not be `sha256:<hex>`) */
  private readonly fileHashes: Buffer | readonly string[];
  /** the key others join each chunk by (`appended`), or null (a whole NAR: nobody joins it) */
  readonly keys: readonly (string | null)[];
  /** set once a commit took the group: resolves when its rows are valid */
  marking: Promise<void> | null = null;

  constructor(frames: readonly { id: number; key: string | null; fileHash: string }[], placements: readonly Placement[]) {
    const first = placements[0]!;
    const last = placements[placements.length - 1]!;
    this.placement = { packId: first.packId, offset: first.offset, length: last.offset + last.length - first.offset, pack: first.pack };
    this.ids = frames.map((f) => f.id);
    this.lengths = placements.map((p) => p.length);
    this.keys = frames.map((f) => f.key);
    if (frames.every((f) => SHA256_HEX.test(f.fileHash))) {
      const bytes = Buffer.allocUnsafeSlow(32 * frames.length);
      frames.forEach((f, i) => bytes.write(f.fileHash.slice(7), 32 * i, 32, "hex"));
      this.fileHashes = bytes;
    } else {
      this.fileHashes = frames.map((f) => f.fileHash);
    }
  }

  /** The chunk rows to mark valid, appended to `into`'s columns. */
  addTo(into: PackedChunks): void {
    let offset = this.placement.offset;
    this.ids.forEach((id, i) => {
      const length = this.lengths[i]!;
      into.ids.push(id);
      const hashes = this.fileHashes;
      into.fileHashes.push(Buffer.isBuffer(hashes) ? `sha256:${hashes.toString("hex", 32 * i, 32 * i + 32)}` : hashes[i]!);
      into.fileSizes.push(length);
      into.packIds.push(this.placement.packId);
      into.packOffsets.push(offset);
      offset += length;
    });
  }
}

/** Rows to mark valid per statement (markPackedSlicesValid). */
const MARK_SLICE = 2048;

/** The groups' chunk rows, in slices of about MARK_SLICE, each built when asked for. */
function* slicesOf(groups: readonly PackedGroup[]): Generator<PackedChunks> {
  let rows: PackedChunks = { ids: [], fileHashes: [], fileSizes: [], packIds: [], packOffsets: [] };
  for (const g of groups) {
    g.addTo(rows);
    if (rows.ids.length >= MARK_SLICE) {
      yield rows;
      rows = { ids: [], fileHashes: [], fileSizes: [], packIds: [], packOffsets: [] };
    }
  }
  if (rows.ids.length > 0) yield rows;
}

/** A chunk a batch's claim created: its index in the batch, its row and file, whether the claim linked it. */
interface FreshChunk {
  i: number;
  id: number;
  remoteFile: RemoteFile;
  linked: boolean;
}

/** A batch's place in its upload's order of appends (takeTurn). */
interface Turn {
  ready: Promise<void>;
  done(): void;
}

export interface PackingOptions {
  packs: boolean;
  packSize: number;
}

export interface CreatedChunk {
  id: number;
  remoteFile: RemoteFile;
}

/** The chunk rows an upload inserted, with where their files go: what it must clean up if it fails. */
export type CreatedChunks = CreatedChunk[];

/**
 * The stored frames of chunks of the batch being stored, by their index in it: the bytes live
 * on the worker that cut them (nar-pass.ts), which compresses only those asked for.
 */
export type FrameSource = (indexes: readonly number[]) => Promise<StoredFrame[]>;

export class ChunkStore {
  /** in-process uploads of the same chunk wait for each other instead of storing it twice */
  private readonly inflight = new Map<string, Promise<unknown>>();

  private readonly db: Db;
  private readonly storage: StorageDriver;
  private readonly compression: { type: CompressionType; level: number; narinfoName: string };
  /** the atticd's pack writer, shared by every upload; null: one object per chunk (upstream's layout) */
  private readonly packs: PackWriter | null;
  /** packed chunks not yet valid, by key, with the group they are in: other uploads (and repeats) join them instead of waiting */
  private readonly appended = new Map<string, PackedGroup>();
  /** per upload (its CreatedChunks): the groups its chunks are in, and its chain of appends (NAR order) */
  private readonly groups = new WeakMap<CreatedChunks, Set<PackedGroup>>();
  private readonly appendChain = new WeakMap<CreatedChunks, Promise<void>>();

  constructor(
    db: Db,
    storage: StorageDriver,
    compression: { type: CompressionType; level: number; narinfoName: string },
    packing: PackingOptions = { packs: false, packSize: 0 },
  ) {
    this.db = db;
    this.storage = storage;
    this.compression = compression;
    this.packs = packing.packs
      ? new PackWriter(storage, leasedPackHooks(db), { packSize: packing.packSize })
      : null;
  }

  /** Seal what is open (shutdown). */
  async close(): Promise<void> {
    await this.packs?.close();
  }

  private usedBy(created: CreatedChunks): Set<PackedGroup> {
    let set = this.groups.get(created);
    if (!set) this.groups.set(created, (set = new Set()));
    return set;
  }

  /**
   * Before an upload's final commit: every packed chunk it uses (its own, and those it joined)
   * durable and valid. Groups taken by one call are made durable together (one fsync, or one
   * sealed pack) and marked valid in one transaction.
   */
  async commitUpload(created: CreatedChunks): Promise<void> {
    const groups = [...(this.groups.get(created) ?? [])];
    if (groups.length === 0) return;
    const todo = groups.filter((g) => g.marking === null);
    if (todo.length > 0) {
      const marking = (async () => {
        await this.packs!.durable(todo.map((g) => g.placement));
        await markPackedSlicesValid(this.db, () => slicesOf(todo));
      })();
      for (const g of todo) g.marking = marking;
      const forget = () => {
        for (const g of todo) for (const key of g.keys) if (key !== null && this.appended.get(key) === g) this.appended.delete(key);
      };
      marking.then(forget, forget);
    }
    await Promise.all(groups.map((g) => g.marking));
  }

  /**
   * A place in this upload's order of appends, taken when a batch starts (batches are launched in
   * NAR order, but their claims and compression finish in any order): the batch appends once the
   * batches before it have, so a NAR's new chunks lie back to back in the pack (one ranged read).
   */
  private takeTurn(created: CreatedChunks): Turn {
    const ready = this.appendChain.get(created) ?? Promise.resolve();
    let release!: () => void;
    this.appendChain.set(created, new Promise<void>((resolve) => (release = resolve)));
    let released = false;
    return {
      ready,
      done: () => {
        if (!released) {
          released = true;
          release();
        }
      },
    };
  }

  /** Append stored frames in this upload's order; `key` (chunk hash and compression) lets others join them. */
  private async appendFrames(
    created: CreatedChunks,
    frames: readonly { id: number; key: string | null; frame: Uint8Array; fileHash: string }[],
    turn: Turn = this.takeTurn(created),
  ): Promise<{ group: PackedGroup; fileSizes: number[] }> {
    let placements: Placement[];
    try {
      await turn.ready;
      placements = await this.packs!.append(frames.map((f) => f.frame));
    } finally {
      turn.done();
    }
    // copied or written by the pack writer: the buffer they came in from a worker is freed now
    releaseMoved(frames.map((f) => f.frame));
    const group = new PackedGroup(frames, placements);
    for (const key of group.keys) if (key !== null) this.appended.set(key, group);
    this.usedBy(created).add(group);
    return { group, fileSizes: placements.map((p) => p.length) };
  }

  /** Whether new chunks go into packs. */
  get packing(): boolean {
    return this.packs !== null;
  }

  /**
   * A whole NAR stored as one chunk (below the chunking threshold), already compressed: appended
   * to the open pack; it turns valid at `commitUpload`.
   */
  async appendWhole(created: CreatedChunks, id: number, frame: Uint8Array, fileHash: string): Promise<void> {
    await this.appendFrames(created, [{ id, key: null, frame, fileHash }]);
  }

  /** Join a packed chunk another upload of this process appended: held by id, valid with its group. */
  private async joinPacked(key: string, created: CreatedChunks): Promise<HeldChunk | null> {
    const group = this.appended.get(key);
    if (!group) return null;
    const i = group.keys.indexOf(key);
    const id = group.ids[i]!;
    if (!(await holdChunk(this.db, id))) {
      if (this.appended.get(key) === group) this.appended.delete(key);
      return null;
    }
    this.usedBy(created).add(group);
    return { id, fileSize: group.lengths[i]!, deduplicated: true };
  }

  /**
   * Store (or find) a batch of chunks of server-chunked data (hashes computed by our own worker,
   * so dedup is trusted): one transaction claims them all, the frames of the new ones are asked
   * for (`frames`: only new chunks are compressed) and written, and they turn valid (packed: when
   * the upload commits; else one transaction now). Chunks another upload in this process is
   * writing, repeats within the batch and chunks another replica is writing take the
   * one-at-a-time path. Every chunk comes back held, in order; if the batch fails, it gives up the
   * holds it took first. With `link`, the claim's transaction also links every chunk it finds or
   * creates into the NAR (claims and links of a batch are one transaction): those come back
   * `linked`, without a hold; only the one-at-a-time chunks are left to link.
   */
  async storeBatch(
    batch: Pick<ChunkBatch, "hashes" | "sizes">,
    frames: FrameSource,
    created: CreatedChunks,
    signal: AbortSignal,
    link?: BatchLink,
  ): Promise<HeldChunk[]> {
    // taken before the first await: batches append in the order they were launched
    const turn = this.packs ? this.takeTurn(created) : null;
    try {
      return await this.storeBatchInTurn(batch, frames, created, signal, turn, link);
    } finally {
      turn?.done();
    }
  }

  private async storeBatchInTurn(
    batch: Pick<ChunkBatch, "hashes" | "sizes">,
    frames: FrameSource,
    created: CreatedChunks,
    signal: AbortSignal,
    turn: Turn | null,
    link: BatchLink | undefined,
  ): Promise<HeldChunk[]> {
    const { hashes, sizes } = batch;
    const results: HeldChunk[] = new Array<HeldChunk>(hashes.length);
    /** ids this batch holds right now: given up if it fails */
    const held: number[] = [];
    const claimed: number[] = [];
    const slow: number[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < hashes.length; i++) {
      const key = this.keyOf(hashes[i]!);
      if (this.inflight.has(key) || this.appended.has(key) || seen.has(hashes[i]!)) slow.push(i);
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
        chunk_size: sizes[i]!,
        compression: this.compression.narinfoName,
        remote_file: JSON.stringify(files[k]!.remoteFile),
        remote_file_id: files[k]!.remoteFileId,
        // linked by the claim: its chunkref keeps it alive, no hold needed
        holders_count: link ? 0 : 1,
      })),
      new Date(Date.now() - BUSY_WINDOW_MS),
      link ? { narId: link.narId, seqs: claimed.map((i) => link.firstSeq + i) } : undefined,
    );
    const linked = link !== undefined;
    const fresh: FreshChunk[] = [];
    const writing: string[] = [];
    claims.forEach((claim, k) => {
      const i = claimed[k]!;
      if (claim.kind === "found") {
        if (!linked) held.push(claim.chunk.id);
        results[i] = { id: claim.chunk.id, fileSize: claim.chunk.file_size ?? 0, deduplicated: true, linked };
      } else if (claim.kind === "busy") {
        slow.push(i);
      } else {
        created.push({ id: claim.id, remoteFile: files[k]!.remoteFile });
        if (!linked) held.push(claim.id);
        writing.push(this.keyOf(hashes[i]!));
        fresh.push({ i, id: claim.id, remoteFile: files[k]!.remoteFile, linked });
      }
    });
    // only chunks found new are compressed; others wanting them wait until they are valid, then
    // find them; the entries go as soon as it settles (before any waiter resumes), not when the
    // whole batch ends: a repeat in this batch waits on it below
    const stored: Promise<void> = (
      this.packs
        ? this.writeFreshPacked(hashes, fresh, frames, results, created, turn!)
        : this.writeFresh(fresh, frames, results, signal).then((valid) => markChunksValid(this.db, valid))
    ).finally(() => {
      for (const key of writing) if (this.inflight.get(key) === stored) this.inflight.delete(key);
    });
    for (const key of writing) this.inflight.set(key, stored);
    const slowWork = slow.map(async (i) => {
      results[i] = await this.storeOne(hashes[i]!, sizes[i]!, async () => (await frames([i]))[0]!, created, signal);
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

  /** Packs: the batch's new chunks' frames, appended; their rows turn valid when the upload commits. */
  private async writeFreshPacked(
    hashes: readonly string[],
    fresh: readonly FreshChunk[],
    frames: FrameSource,
    results: HeldChunk[],
    created: CreatedChunks,
    turn: Turn,
  ): Promise<void> {
    if (fresh.length === 0) return turn.done();
    const stored = await frames(fresh.map((f) => f.i));
    const { fileSizes } = await this.appendFrames(
      created,
      fresh.map((f, j) => ({ id: f.id, key: this.keyOf(hashes[f.i]!), frame: stored[j]!.frame, fileHash: stored[j]!.fileHash })),
      turn,
    );
    fresh.forEach((f, j) => (results[f.i] = { id: f.id, fileSize: fileSizes[j]!, deduplicated: false, linked: f.linked }));
  }

  /** The batch's new chunks' frames, each written as its own file; their rows are marked valid by the caller. */
  private async writeFresh(
    fresh: readonly FreshChunk[],
    frames: FrameSource,
    results: HeldChunk[],
    signal: AbortSignal,
  ): Promise<{ id: number; fileHash: string; fileSize: number }[]> {
    if (fresh.length === 0) return [];
    const stored = await frames(fresh.map((f) => f.i));
    await putAll(this.storage, fresh.map((f, j) => ({ remoteFile: f.remoteFile, data: stored[j]!.frame })), signal);
    const valid = fresh.map((f, j) => {
      const fileSize = stored[j]!.frame.length;
      results[f.i] = { id: f.id, fileSize, deduplicated: false, linked: f.linked };
      return { id: f.id, fileHash: stored[j]!.fileHash, fileSize };
    });
    releaseMoved(stored.map((s) => s.frame));
    return valid;
  }

  /**
   * Store (or find) one chunk of server-chunked data, by its hash (computed by our own worker, so
   * dedup is trusted); `frame` gives its stored bytes if it turns out new.
   */
  private async storeOne(chunkHash: string, chunkSize: number, frame: () => Promise<StoredFrame>, created: CreatedChunks, signal: AbortSignal): Promise<HeldChunk> {
    const key = this.keyOf(chunkHash);
    for (;;) {
      const joined = await this.joinPacked(key, created);
      if (joined) return joined;
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
          chunk_size: chunkSize,
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
      const work = this.packs ? this.writeNewPacked(frame, chunkHash, mine, created) : this.writeNew(frame, mine, signal);
      this.inflight.set(key, work);
      try {
        return await work;
      } finally {
        this.inflight.delete(key);
      }
    }
  }

  private async writeNewPacked(frame: () => Promise<StoredFrame>, chunkHash: string, pending: CreatedChunk, created: CreatedChunks): Promise<HeldChunk> {
    try {
      const f = await frame();
      const { fileSizes } = await this.appendFrames(created, [{ id: pending.id, key: this.keyOf(chunkHash), frame: f.frame, fileHash: f.fileHash }]);
      return { id: pending.id, fileSize: fileSizes[0]!, deduplicated: false };
    } catch (err) {
      await releaseChunk(this.db, pending.id).catch(() => {});
      throw err;
    }
  }

  private async writeNew(frame: () => Promise<StoredFrame>, pending: CreatedChunk, signal: AbortSignal): Promise<HeldChunk> {
    try {
      const f = await frame();
      await this.storage.put(pending.remoteFile, Readable.from([f.frame]), signal);
      const file = { fileHash: f.fileHash, fileSize: f.frame.length };
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
    // packed chunks this upload appended turn valid first if their pack can be made durable:
    // another upload may have joined them, and a valid chunk nobody uses is dropped below anyway
    await this.commitUpload(created).catch(() => {});
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
