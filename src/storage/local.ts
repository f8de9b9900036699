// Local folder backend. Writes go to a temp name in the target's shard directory, are fsynced and
// then renamed, so a crash or abort never leaves a half file under a live key.
import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm, stat, type FileHandle } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { assertValidKey } from "./keys.ts";
import { LocalReader } from "./local-reader.ts";
import { FileRangeStream } from "./local-range.ts";
import { prepareLayout, shardedPath, sweepTempFiles, TEMP_PREFIX } from "./local-layout.ts";
import { remoteFileId } from "./remote-file.ts";
import { forEachLimit } from "../util/concurrency.ts";
import { chunksOf, settleAll } from "./streams.ts";
import { StorageFullError, StorageNotFoundError, UnsupportedRemoteFileError } from "./types.ts";
import type { AppendFile, BufferedFile, PutResult, RemoteFile, StorageDriver } from "./types.ts";

const DELETE_CONCURRENCY = 20;
const READ_PIECE_MAX = 1024 * 1024;
/**
 * a ranged read (a run of a pack) is streamed in pieces of this size, this many in flight
 * (local-range.ts): 1 MiB in flight per download. Measured serving the 587 MB path (atticd CPU per
 * download, median of 7): 256 KiB × 4 220 ms, × 2 260 ms, one at a time (a read stream) 290 ms,
 * 512 KiB × 4 340 ms (larger buffers cost page faults)
 */
const RANGE_PIECE = 256 * 1024;
const RANGE_AHEAD = 4;
/** errno codes of a full disk or an exhausted quota (blocks or inodes) */
const FULL_CODES = new Set(["ENOSPC", "EDQUOT"]);

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code;
}

async function writeAll(file: FileHandle, chunk: Buffer, position?: number): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset, position === undefined ? null : position + offset);
    offset += bytesWritten;
  }
}

/** Make a rename durable: the directory entry itself must reach the disk. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class LocalStorage implements StorageDriver {
  readonly name: string;
  readonly root: string;
  readonly cheapHas = true;
  private readonly reader = new LocalReader();
  private readonly knownDirs = new Set<string>();

  private constructor(root: string) {
    this.root = root;
    this.name = `local:${root}`;
  }

  /** Open (creating or migrating as needed) the storage folder at `path`. */
  static async open(path: string): Promise<LocalStorage> {
    const root = resolve(path);
    await prepareLayout(root);
    return new LocalStorage(root);
  }

  remoteFileFor(key: string): { remoteFile: RemoteFile; remoteFileId: string } {
    const remoteFile: RemoteFile = { Local: { name: assertValidKey(key) } };
    return { remoteFile, remoteFileId: remoteFileId(remoteFile) };
  }

  private pathOf(remoteFile: RemoteFile): string {
    if (!("Local" in remoteFile)) throw new UnsupportedRemoteFileError("local", remoteFile);
    return shardedPath(this.root, assertValidKey(remoteFile.Local.name));
  }

  async put(remoteFile: RemoteFile, body: Readable, signal?: AbortSignal): Promise<PutResult> {
    const target = this.pathOf(remoteFile);
    signal?.throwIfAborted();
    try {
      return await this.writeAtomically(target, body, signal);
    } catch (err) {
      throw this.classified(err);
    }
  }

  /** A full disk or quota as StorageFullError (the server answers 507); anything else as it is. */
  private classified(err: unknown): unknown {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    return code !== undefined && FULL_CODES.has(code) ? new StorageFullError(this.name, code, err) : err;
  }

  private async writeAtomically(target: string, body: Readable, signal?: AbortSignal): Promise<PutResult> {
    const dir = dirname(target);
    const temp = join(dir, `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
    const file = await this.createTemp(dir, temp);
    let fileOpen = true;
    let renamed = false;
    let size = 0;
    try {
      for await (const chunk of chunksOf(body, signal)) {
        await writeAll(file, chunk);
        size += chunk.length;
      }
      await file.sync();
      fileOpen = false;
      await file.close();
      signal?.throwIfAborted();
      await rename(temp, target);
      renamed = true;
      await syncDirectory(dir);
    } finally {
      if (fileOpen) await file.close().catch(() => {});
      if (!renamed) await rm(temp, { force: true });
    }
    return { size };
  }

  /**
   * Each file to a temp name, written and fsynced (all at once: the fsyncs share journal
   * commits), then renamed; then each shard directory involved is synced once. Durable as `put`
   * per file, with one directory sync per directory instead of one per file.
   */
  async putMany(files: readonly BufferedFile[], signal?: AbortSignal): Promise<void> {
    const targets = files.map((f) => this.pathOf(f.remoteFile));
    signal?.throwIfAborted();
    const temps: (string | undefined)[] = [];
    const renamed: string[] = [];
    try {
      await settleAll(
        files.map(async (f, i) => {
          const dir = dirname(targets[i]!);
          const temp = join(dir, `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
          const file = await this.createTemp(dir, temp);
          temps[i] = temp;
          try {
            await writeAll(file, Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength));
            await file.sync();
          } finally {
            await file.close();
          }
        }),
      );
      signal?.throwIfAborted();
      await settleAll(
        targets.map(async (target, i) => {
          await rename(temps[i]!, target);
          temps[i] = undefined;
          renamed.push(target);
        }),
      );
      await settleAll([...new Set(targets.map((t) => dirname(t)))].map((dir) => syncDirectory(dir)));
    } catch (err) {
      await Promise.all([...temps, ...renamed].map((path) => (path ? rm(path, { force: true }) : undefined)));
      throw this.classified(err);
    }
  }

  /**
   * Create the temp file, making its shard directory on first use. Directories known to exist
   * are remembered (the layout has a few thousand at most), which saves a mkdir per chunk; one
   * removed behind our back is made again.
   */
  private async createTemp(dir: string, temp: string): Promise<FileHandle> {
    if (!this.knownDirs.has(dir)) await mkdir(dir, { recursive: true });
    try {
      const file = await open(temp, "wx", 0o644);
      this.knownDirs.add(dir);
      return file;
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
      this.knownDirs.delete(dir);
      await mkdir(dir, { recursive: true });
      const file = await open(temp, "wx", 0o644);
      this.knownDirs.add(dir);
      return file;
    }
  }

  /** The file opened for reading; StorageNotFoundError when it does not exist. */
  private async openForReading(remoteFile: RemoteFile, signal?: AbortSignal): Promise<FileHandle> {
    const path = this.pathOf(remoteFile);
    signal?.throwIfAborted();
    try {
      return await open(path, "r");
    } catch (err) {
      if (isErrno(err, "ENOENT")) throw new StorageNotFoundError(remoteFileId(remoteFile));
      throw err;
    }
  }

  async get(remoteFile: RemoteFile, signal?: AbortSignal, sizeHint?: number): Promise<Readable> {
    const file = await this.openForReading(remoteFile, signal);
    // A chunk file of known size is read in one piece (at most 1 MiB at a time): the default
    // 64 KiB pieces cost a chunk two or three reads, each with a fresh 64 KiB buffer.
    const sized = sizeHint !== undefined && sizeHint > 0 ? { highWaterMark: Math.min(sizeHint, READ_PIECE_MAX) } : {};
    return file.createReadStream({ ...sized, ...(signal ? { signal } : {}) });
  }

  async openAppend(remoteFile: RemoteFile): Promise<AppendFile> {
    const path = this.pathOf(remoteFile);
    const dir = dirname(path);
    let file: FileHandle;
    try {
      file = await this.createTemp(dir, path);
    } catch (err) {
      throw this.classified(err);
    }
    let position = 0;
    let named = false;
    // the open file's identity never changes: read once, so a check (the pack writer asks before
    // every append) costs one stat of the name, not a stat and an fstat
    let mine: { ino: number; dev: number } | null = null;
    const intact = async (): Promise<boolean> => {
      mine ??= await file.stat();
      const atName = await stat(path).catch(() => null);
      return atName !== null && atName.ino === mine.ino && atName.dev === mine.dev;
    };
    return {
      append: async (pieces) => {
        try {
          const buffers = pieces.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
          const total = buffers.reduce((n, b) => n + b.length, 0);
          const { bytesWritten } = await file.writev(buffers, position);
          // a short writev (rare) is finished with plain writes
          if (bytesWritten < total) await writeAll(file, Buffer.concat(buffers, total).subarray(bytesWritten), position + bytesWritten);
          position += total;
        } catch (err) {
          throw this.classified(err);
        }
      },
      sync: async () => {
        await file.sync();
        if (!named) {
          await syncDirectory(dir);
          named = true;
        }
        if (!(await intact())) throw new StorageNotFoundError(`${remoteFileId(remoteFile)} (removed or replaced while being written)`);
      },
      intact,
      close: () => file.close(),
    };
  }

  async getRange(remoteFile: RemoteFile, offset: number, length: number, signal?: AbortSignal): Promise<Readable> {
    const file = await this.openForReading(remoteFile, signal);
    try {
      const { size } = await file.stat();
      if (size < offset + length) throw new StorageNotFoundError(`${remoteFileId(remoteFile)} (${size} bytes, range ends at ${offset + length})`);
    } catch (err) {
      await file.close();
      throw err;
    }
    if (length === 0) {
      await file.close();
      return Readable.from([]);
    }
    return new FileRangeStream(file, offset, length, { piece: RANGE_PIECE, ahead: RANGE_AHEAD, ...(signal ? { signal } : {}) });
  }

  async readRange(remoteFile: RemoteFile, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<void> {
    const file = await this.openForReading(remoteFile, signal);
    try {
      let filled = 0;
      while (filled < into.byteLength) {
        signal?.throwIfAborted();
        const { bytesRead } = await file.read(into, filled, into.byteLength - filled, offset + filled);
        if (bytesRead === 0) throw new StorageNotFoundError(`${remoteFileId(remoteFile)} (range ends at ${offset + into.byteLength}, file ends at ${offset + filled})`);
        filled += bytesRead;
      }
    } finally {
      await file.close();
    }
  }

  /**
   * The whole file in one buffer, read by the batched file reader (local-reader.ts): the reads
   * asked for in one turn of the event loop cost one message to a worker of the pool, not three
   * thread-pool trips each.
   */
  async read(remoteFile: RemoteFile, size: number, signal?: AbortSignal): Promise<Buffer> {
    const path = this.pathOf(remoteFile);
    signal?.throwIfAborted();
    try {
      return await this.reader.read(path, size);
    } catch (err) {
      throw isErrno(err, "ENOENT") ? new StorageNotFoundError(remoteFileId(remoteFile)) : err;
    }
  }

  async has(remoteFile: RemoteFile): Promise<boolean> {
    return this.reader.exists(this.pathOf(remoteFile));
  }

  async deleteMany(remoteFiles: RemoteFile[]): Promise<{ failed: { remoteFile: RemoteFile; error: Error }[] }> {
    const failed: { remoteFile: RemoteFile; error: Error }[] = [];
    await forEachLimit(remoteFiles, DELETE_CONCURRENCY, async (remoteFile) => {
      try {
        // Empty shard directories stay: there are at most 4096 of them and removing one would
        // race with a concurrent put into it.
        await rm(this.pathOf(remoteFile), { force: true });
      } catch (err) {
        failed.push({ remoteFile, error: err as Error });
      }
    });
    return { failed };
  }

  /** Remove temp files a crashed process left behind (older than `olderThanMs`). */
  sweepTempFiles(olderThanMs: number): Promise<number> {
    return sweepTempFiles(this.root, olderThanMs);
  }
}
