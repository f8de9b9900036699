// Messages between the main thread (pool.ts and its callers) and a CPU worker (worker.ts). Every
// message carries the id of its job; a job is a one-shot compression, a batch of whole-file reads
// for downloads (storage/local-reader.ts), one NAR's pass or a SHA-256 (docs/architecture.md, "The
// life of an upload").
import type { MessagePort } from "node:worker_threads";
import type { ChunkingParams } from "../chunking/fastcdc.ts";

/** Codecs a worker runs itself; any other (xz) comes back raw for the main thread's codec. */
export type WorkerCodec = "zstd" | "brotli" | "none";

export interface NarPassOptions {
  /** null: the whole NAR is one stored object (below the chunking threshold) */
  chunking: ChunkingParams | null;
  /** what the stored bytes are compressed with; `raw: true` when the main thread compresses (xz) */
  codec: { type: WorkerCodec; level: number; raw: boolean };
  /** chunks per batch the main thread answers */
  batchSize: number;
}

/** A file to read whole: `size` bytes expected, or -1 to ask only whether it exists. */
export interface FileRead {
  path: string;
  size: number;
}

/**
 * A file read's outcome: its bytes (moved; one byte longer than asked, the probe that found no
 * more), nothing (it exists), or an error with its errno code (ENOENT: not found).
 */
export interface FileReadAnswer {
  bytes?: Uint8Array;
  error?: string;
  code?: string;
}

export type ToWorker =
  | { kind: "compress"; id: number; type: "zstd" | "brotli"; level: number; data: Uint8Array; hash: boolean }
  /** read these files whole (read-files.ts), answered in one `files` message */
  | { kind: "read-files"; id: number; files: FileRead[] }
  /**
   * `port`: to a partner worker that compresses this pass's new chunks, and hashes the chunks of
   * the batches it is given while it has nothing else to do (both cores busy on one upload, new
   * data or not); `busy` (shared by both) counts the jobs sent to the partner not yet done
   */
  | { kind: "nar-open"; id: number; options: NarPassOptions; port?: MessagePort; busy?: Int32Array; ring?: WireRing }
  /** be the partner of pass `id`: compress (or hash) what comes through `port`, answer the main thread */
  | { kind: "frames-open"; id: number; port: MessagePort; codec: NarPassOptions["codec"]; busy?: Int32Array; ring?: WireRing }
  /** bytes of the NAR, moved in (a whole NAR's pass) */
  | { kind: "nar-data"; id: number; piece: Uint8Array }
  /** bytes of the NAR written into the pass's ring (ring.ts) at `at`; `wrapped`: a new lap, move the carry before them */
  | { kind: "nar-ring"; id: number; at: number; length: number; wrapped: boolean; released?: number[] }
  | { kind: "nar-end"; id: number; released?: number[] }
  /** the upload stopped: forget the session */
  | { kind: "nar-close"; id: number }
  /**
   * compress (and send back) these chunks of a batch; the batch stays held until released.
   * `released` (on this and the messages above): batches the main thread is done with since its
   * last message, their views dropped (one message fewer per batch)
   */
  | { kind: "nar-compress"; id: number; batch: number; ask: number; indexes: number[]; released?: number[] }
  /** bytes for job `id`'s running SHA-256 (sha256.ts), moved in; answered by `sha256-took` */
  | { kind: "sha256-data"; id: number; piece: Uint8Array }
  /** the SHA-256 of the bytes so far; `final`: and forget it */
  | { kind: "sha256-digest"; id: number; final: boolean }
  | { kind: "sha256-close"; id: number }
  /** the SHA-256 of a file, read here */
  | { kind: "sha256-file"; id: number; path: string };

/**
 * A chunked pass's ring (ring.ts) as posted to its workers: the shared memory (a WebAssembly
 * memory the worker cuts in, or a plain SharedArrayBuffer) and where the ring's bytes start in it.
 */
export interface WireRing {
  shared: WebAssembly.Memory | SharedArrayBuffer;
  base: number;
}

/** A run of chunks cut from the NAR, in order: their hex SHA-256 and sizes, never their bytes. */
export interface ChunkBatch {
  seq: number;
  hashes: string[];
  sizes: number[];
}

export interface NarPassResult {
  /** hex SHA-256 and size of the NAR */
  narHash: string;
  narSize: number;
  /** the `.ls` listing, zstd-compressed (from the same parse that validated the NAR) */
  listing: Uint8Array | null;
  /** whole mode: hex SHA-256 and size of the stored bytes (not set when raw) */
  fileHash?: string;
  fileSize?: number;
}

export type FromWorker =
  | { kind: "compressed"; id: number; out: Uint8Array; sha256?: string }
  /** the answers to a `read-files`, in its order */
  | { kind: "files"; id: number; results: FileReadAnswer[] }
  /** `narOffset` is set when the NAR itself is invalid (a NarError in the worker) */
  | { kind: "error"; id: number; message: string; narOffset?: number }
  /**
   * A `nar-data` or `nar-end` was consumed (one answer each: the main thread's flow control):
   * the batches it completed (chunked) or the stored bytes it produced (whole), and after
   * `nar-end`, the result. `sealed`: batches cut so far, those handed to the partner included.
   */
  | { kind: "nar-progress"; id: number; batches: ChunkBatch[]; out: Uint8Array[]; result?: NarPassResult; sealed: number }
  /** a batch whose chunks the partner hashed (it may arrive before or after batches before it: `seq` orders them) */
  | { kind: "nar-batch"; id: number; batch: ChunkBatch }
  /** frames of a batch's chunks (as asked by `ask`, in that order), back to back in `data` (moved), with each one's length and hex SHA-256 */
  | { kind: "nar-frames"; id: number; batch: number; ask: number; data: Uint8Array; lengths: number[]; fileHashes: string[]; byCutter?: true }
  /** a `sha256-data` piece was hashed (flow control): moved back, to be filled again */
  | { kind: "sha256-took"; id: number; piece: Uint8Array }
  /** hex SHA-256 and byte count (a `sha256-digest`, or a `sha256-file`) */
  | { kind: "sha256"; id: number; digest: string; size: number };

/**
 * From a pass's worker to its partner: chunks of a batch, the new ones to compress, or all of a
 * batch just cut, to hash: where they lie in the pass's ring (`offsets`), or, without a ring,
 * back to back in `data` (moved).
 */
export interface ToPartner {
  kind: "compress" | "hash";
  batch: number;
  /** compress: the main thread's ask, echoed with the frames */
  ask?: number;
  data?: Uint8Array;
  offsets?: number[];
  sizes: number[];
}
