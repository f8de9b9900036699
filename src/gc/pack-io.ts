// The compactor's reads and writes of pack objects, through the StorageDriver: a run of adjacent
// chunks read with one ranged read, and a new pack streamed to `put` as frames are appended, so
// memory stays at one run plus the stream's buffer whatever the pack size.
import { randomUUID } from "node:crypto";
import { PassThrough } from "node:stream";
import type { ObjectWriter, RemoteFile, StorageDriver } from "../storage/types.ts";

/**
 * `length` bytes of a pack from `offset`, in one buffer (a run is at most a few MiB): `into` when
 * it is large enough (a buffer the caller reuses run after run, so a long compaction does not
 * churn through megabytes of short-lived buffers), else a new one.
 */
export async function readPackRange(
  storage: StorageDriver,
  remoteFile: RemoteFile,
  offset: number,
  length: number,
  signal?: AbortSignal,
  into?: Buffer,
): Promise<Buffer> {
  const out = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
  if (storage.readRange) {
    await storage.readRange(remoteFile, offset, out, signal);
    return out;
  }
  const stream = await storage.getRange(remoteFile, offset, length, signal);
  let at = 0;
  for await (const piece of stream as AsyncIterable<Buffer>) {
    if (at + piece.length > length) throw new Error(`pack range longer than ${length} bytes`);
    piece.copy(out, at);
    at += piece.length;
  }
  if (at !== length) throw new Error(`pack range short: ${at} of ${length} bytes`);
  return out;
}

/** A new pack being written: frames appended back to back, durable once `finish` resolves. */
export interface PackOutput {
  readonly remoteFile: RemoteFile;
  /** bytes appended so far: the offset of the next frame */
  readonly bytes: number;
  /** append one frame (copied: the caller may reuse its buffer); resolves with its offset once the stream has room for more */
  append(frame: Buffer): Promise<number>;
  /** end the pack and wait until the backend has stored it (local: fsynced; S3: uploaded) */
  finish(): Promise<{ size: number }>;
  /** give up: the backend leaves nothing visible under the name */
  abort(): Promise<void>;
}

/** A fresh pack name, as the pack writer names them: `<uuid>.pack`. */
export function newPackFile(storage: StorageDriver): { remoteFile: RemoteFile; remoteFileId: string } {
  return storage.remoteFileFor(`${randomUUID()}.pack`);
}

/** Bytes the stream may buffer ahead of the backend's writes. */
const HIGH_WATER = 2 * 2 ** 20;
/** Frames are handed to the backend in pieces of about this size (one write each, not one per frame). */
const PIECE = 2 ** 20;

export async function openPackOutput(storage: StorageDriver, remoteFile: RemoteFile, signal: AbortSignal): Promise<PackOutput> {
  if (storage.openAppend) return appendedOutput(storage, remoteFile, signal);
  if (storage.openWrite) return writtenOutput(storage.openWrite(remoteFile, signal), remoteFile);
  return streamedOutput(storage, remoteFile, signal);
}

/**
 * A backend that takes pushed bytes into buffers of its own (S3: the multipart upload's part
 * buffers, reused): each frame is handed over as it is, so the output adds nothing to the
 * backend's bytes in flight and allocates nothing per byte.
 */
function writtenOutput(writer: ObjectWriter, remoteFile: RemoteFile): PackOutput {
  let bytes = 0;
  return {
    remoteFile,
    get bytes() {
      return bytes;
    },
    async append(frame) {
      const offset = bytes;
      bytes += frame.length;
      await writer.write(frame);
      return offset;
    },
    async finish() {
      const { size } = await writer.finish();
      if (size !== bytes) throw new Error(`pack stored ${size} bytes, ${bytes} appended`);
      return { size };
    },
    abort: () => writer.abort(),
  };
}

/**
 * A backend with appendable files (local): frames are copied into one piece buffer, written when
 * full and reused once written, so the output holds PIECE bytes whatever the pack size and
 * allocates nothing per byte. Durable on `finish` (fsync, then the directory).
 */
async function appendedOutput(storage: StorageDriver, remoteFile: RemoteFile, signal: AbortSignal): Promise<PackOutput> {
  const file = await storage.openAppend!(remoteFile);
  const piece = Buffer.allocUnsafe(PIECE);
  let pieceBytes = 0;
  let bytes = 0;
  let open = true;
  const flush = async (): Promise<void> => {
    if (pieceBytes === 0) return;
    signal.throwIfAborted();
    await file.append([piece.subarray(0, pieceBytes)]);
    pieceBytes = 0;
  };
  return {
    remoteFile,
    get bytes() {
      return bytes;
    },
    async append(frame) {
      const offset = bytes;
      bytes += frame.length;
      if (pieceBytes + frame.length > PIECE) await flush();
      if (frame.length > PIECE) {
        signal.throwIfAborted();
        await file.append([frame]);
      } else {
        frame.copy(piece, pieceBytes);
        pieceBytes += frame.length;
      }
      return offset;
    },
    async finish() {
      await flush();
      await file.sync();
      open = false;
      await file.close();
      return { size: bytes };
    },
    async abort() {
      if (open) await file.close().catch(() => {});
      open = false;
      await storage.deleteMany([remoteFile]).catch(() => {});
    },
  };
}

/** Any other backend (S3): the pack is streamed to `put` (a multipart upload), in pieces of PIECE bytes. */
function streamedOutput(storage: StorageDriver, remoteFile: RemoteFile, signal: AbortSignal): PackOutput {
  const body = new PassThrough({ highWaterMark: HIGH_WATER });
  const stopped = new AbortController();
  const stored = storage.put(remoteFile, body, AbortSignal.any([signal, stopped.signal]));
  // the failure is reported by append/finish; never an unhandled rejection meanwhile
  stored.catch(() => {});
  let bytes = 0;
  /** frames are copied into a piece of PIECE bytes, handed to the stream when full */
  let piece = Buffer.allocUnsafe(PIECE);
  let pieceBytes = 0;
  const write = async (piece: Buffer): Promise<void> => {
    if (!body.write(piece)) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          body.off("drain", done);
          body.off("close", done);
          resolve();
        };
        body.once("drain", done);
        body.once("close", done);
        stored.catch(reject);
      });
    }
    if (body.destroyed) await stored;
  };
  const flush = async (): Promise<void> => {
    if (pieceBytes === 0) return;
    const full = piece.subarray(0, pieceBytes);
    piece = Buffer.allocUnsafe(PIECE);
    pieceBytes = 0;
    await write(full);
  };
  const output: PackOutput = {
    remoteFile,
    get bytes() {
      return bytes;
    },
    async append(frame) {
      const offset = bytes;
      bytes += frame.length;
      if (frame.length > PIECE) {
        await flush();
        await write(Buffer.from(frame));
        return offset;
      }
      if (pieceBytes + frame.length > PIECE) await flush();
      frame.copy(piece, pieceBytes);
      pieceBytes += frame.length;
      return offset;
    },
    async finish() {
      await flush();
      body.end();
      const { size } = await stored;
      if (size !== bytes) throw new Error(`pack stored ${size} bytes, ${bytes} appended`);
      return { size };
    },
    async abort() {
      stopped.abort(new Error("compaction stopped"));
      body.destroy();
      await stored.catch(() => {});
    },
  };
  return output;
}
