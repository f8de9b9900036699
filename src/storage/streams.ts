// Helpers shared by the backends: reading a source as Buffers under an AbortSignal, and writing
// files held in memory.
import { addAbortSignal, Readable } from "node:stream";
import type { BufferedFile, StorageDriver } from "./types.ts";

/**
 * The source's chunks as Buffers. When `signal` fires the source is destroyed, so a source that
 * is stalled (a slow client) is interrupted too, and the iteration throws an AbortError.
 */
export async function* chunksOf(body: Readable, signal?: AbortSignal): AsyncGenerator<Buffer> {
  signal?.throwIfAborted();
  if (signal) addAbortSignal(signal, body);
  for await (const chunk of body as AsyncIterable<Buffer | string | Uint8Array>) {
    if (typeof chunk === "string") yield Buffer.from(chunk);
    else if (Buffer.isBuffer(chunk)) yield chunk;
    else yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}

/**
 * Write files held in memory: one `putMany` call when the backend has it, else one `put` each,
 * all at once (callers pass a bounded batch). Rejects with the first failure once every write has
 * settled, so nothing is still being written when it returns.
 */
export async function putAll(storage: StorageDriver, files: readonly BufferedFile[], signal?: AbortSignal): Promise<void> {
  if (storage.putMany) return storage.putMany(files, signal);
  await settleAll(files.map((f) => storage.put(f.remoteFile, Readable.from([f.data]), signal)));
}

/** Like Promise.all, but rejects (with the first failure) only once every promise has settled. */
export async function settleAll(work: readonly Promise<unknown>[]): Promise<void> {
  const outcome = await Promise.allSettled(work);
  const failure = outcome.find((o) => o.status === "rejected");
  if (failure) throw failure.reason;
}
