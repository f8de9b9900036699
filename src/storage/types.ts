// The storage seam: a tiny driver interface that the local folder and S3 backends implement.
// Keys are validated opaque names (`<uuid>.chunk`); the DB records where each file lives as a
// `RemoteFile` (upstream's `remote_file` JSON) so an upstream deployment stays readable.
import type { Readable } from "node:stream";

/** upstream `remote_file` JSON, externally tagged */
export type RemoteFile =
  | { Local: { name: string } }
  | { S3: { region: string; bucket: string; key: string } }
  | { Http: { url: string } };

export interface BufferedFile {
  remoteFile: RemoteFile;
  data: Uint8Array;
}

export interface PutResult {
  /** bytes written */
  size: number;
}

/** A file opened for appending (a pack being written: docs/packs.md). */
export interface AppendFile {
  /** Write the pieces at the end of the file, in order. */
  append(pieces: readonly Uint8Array[]): Promise<void>;
  /**
   * Make everything appended so far durable (fsync; the first one also makes the file's name
   * durable). Rejects when the file is no longer under its name (removed or replaced behind our
   * back): what was appended is lost.
   */
  sync(): Promise<void>;
  /** Whether the file is still the one under its name (false once removed or replaced). */
  intact(): Promise<boolean>;
  close(): Promise<void>;
}

/** A new object written by pushing bytes (`openWrite`). */
export interface ObjectWriter {
  /** Append `bytes`; they are copied before this resolves (the caller may reuse its buffer). */
  write(bytes: Uint8Array): Promise<void>;
  /** Resolves once the object is stored whole (durable), with its size. */
  finish(): Promise<PutResult>;
  /** Give up: nothing appears under the name. */
  abort(): Promise<void>;
}

export interface StorageDriver {
  /** human name for logs: `local:/path` or `s3:region/bucket` */
  readonly name: string;
  /**
   * The `RemoteFile` (and its `remote_file_id`) a new key will be stored under.
   * Throws InvalidStorageKeyError for a key that is not a safe file name.
   */
  remoteFileFor(key: string): { remoteFile: RemoteFile; remoteFileId: string };
  /**
   * Stream `body` into a new file. Atomic: the file becomes visible under `remoteFile` only when
   * the whole stream was written; on error or abort nothing is left behind and the promise
   * rejects (with the source's error, or an AbortError when `signal` fired).
   */
  put(remoteFile: RemoteFile, body: Readable, signal?: AbortSignal): Promise<PutResult>;
  /**
   * Optional capability: write several small files held in memory, each as atomic as `put`, and
   * durable together when the promise resolves (the local backend syncs each shard directory once
   * per call instead of once per file). On failure none of them is left behind. Callers use
   * `putAll`, which falls back to `put` per file.
   */
  putMany?(files: readonly BufferedFile[], signal?: AbortSignal): Promise<void>;
  /**
   * A stream of the file's bytes. Rejects with StorageNotFoundError if it does not exist.
   * `sizeHint` (the recorded file size, when known) lets a backend read it in fitting pieces.
   */
  get(remoteFile: RemoteFile, signal?: AbortSignal, sizeHint?: number): Promise<Readable>;
  /**
   * Optional capability: the whole file, whose recorded size is `size`, in one buffer, for small
   * files read many at a time (a NAR's chunks) without a stream per file. Rejects with
   * StorageNotFoundError if it does not exist, and with an error if its size is not `size`.
   */
  read?(remoteFile: RemoteFile, size: number, signal?: AbortSignal): Promise<Buffer>;
  /**
   * A stream of `length` bytes of the file from `offset` (a pack's run of chunks: docs/packs.md):
   * one read (local) or one ranged GET (S3). Rejects with StorageNotFoundError, before any byte,
   * when the file does not exist or ends before `offset + length` (a short pack is a lost one).
   */
  getRange(remoteFile: RemoteFile, offset: number, length: number, signal?: AbortSignal): Promise<Readable>;
  /**
   * Optional capability: fill `into` with the `into.byteLength` bytes of the file from `offset`,
   * reading straight into the caller's buffer (the compactor reuses one buffer for every run, so a
   * long compaction allocates nothing per byte read). Rejects as `getRange` does.
   */
  readRange?(remoteFile: RemoteFile, offset: number, into: Uint8Array, signal?: AbortSignal): Promise<void>;
  /**
   * Optional capability: create a new file under `remoteFile` and append to it (a pack: readers
   * may read what was synced while it grows). A crash leaves it partly written: only bytes that
   * were synced may be referred to. Backends whose objects cannot grow (S3) do not have it.
   */
  openAppend?(remoteFile: RemoteFile): Promise<AppendFile>;
  /**
   * Optional capability: a new object written by pushing bytes, which the backend copies into
   * buffers of its own that it reuses (S3: the multipart upload's part buffers), so the writer's
   * memory is the backend's bytes in flight whatever the object's size, with no allocation per
   * byte. `put` with a stream does the same job for a producer that hands over its buffers.
   */
  openWrite?(remoteFile: RemoteFile, signal?: AbortSignal): ObjectWriter;
  has(remoteFile: RemoteFile): Promise<boolean>;
  /**
   * True when `has` costs no network round trip (a local folder): a NAR download may then check
   * every chunk file before its first byte instead of only the first page (see download/preflight.ts).
   */
  readonly cheapHas?: boolean;
  /** Delete many files; missing files count as deleted. Returns the ones that failed. */
  deleteMany(remoteFiles: RemoteFile[]): Promise<{ failed: { remoteFile: RemoteFile; error: Error }[] }>;
  /** Optional capability: a URL a client can GET directly (S3 presigned). */
  presignedUrl?(remoteFile: RemoteFile, expiresInSeconds: number): Promise<string | null>;
  /**
   * Optional capability: remove the temp files of writes that never finished (a crashed process)
   * and are older than `olderThanMs`; returns how many went. They are never visible under a key,
   * only wasted space. Backends whose writes leave nothing behind (S3: a PutObject is atomic, an
   * unfinished multipart upload is aborted or left to a lifecycle rule) do not have it. GC calls it.
   */
  sweepTempFiles?(olderThanMs: number): Promise<number>;
  /** Release connections. */
  close?(): Promise<void>;
}

export class StorageNotFoundError extends Error {
  constructor(what: string) {
    super(`storage file not found: ${what}`);
    this.name = "StorageNotFoundError";
  }
}

/**
 * The backend has no room for a write: the disk or a quota is full (local ENOSPC/EDQUOT), or the
 * object store answered that the bucket or the server is full. Drivers wrap the original error
 * (as `cause`); the server decides what the client is told.
 */
export class StorageFullError extends Error {
  /** the driver's name: `local:/path` or `s3:region/bucket` */
  readonly storage: string;
  /** what said so: an errno code (`ENOSPC`), an S3 error code, or `HTTP 507` */
  readonly reason: string;

  constructor(storage: string, reason: string, cause: unknown) {
    super(`storage ${storage} is full (${reason})`, { cause });
    this.name = "StorageFullError";
    this.storage = storage;
    this.reason = reason;
  }
}

/** A key that is not a safe opaque file name (see keys.ts). */
export class InvalidStorageKeyError extends Error {
  constructor(key: string) {
    super(`invalid storage key: ${JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)}`);
    this.name = "InvalidStorageKeyError";
  }
}

/** A `RemoteFile` of a kind this backend cannot serve (e.g. `Local` given to S3, or `Http`). */
export class UnsupportedRemoteFileError extends Error {
  constructor(backend: string, remoteFile: RemoteFile) {
    super(`${backend} storage does not understand the remote file ${JSON.stringify(remoteFile)}`);
    this.name = "UnsupportedRemoteFileError";
  }
}
