// Helpers shared by the backends: reading a source as Buffers under an AbortSignal, and running
// a bounded number of tasks at once.
import { addAbortSignal, type Readable } from "node:stream";

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

/** Run `task` over `items` with at most `limit` running at once; resolves when all are done. */
export async function forEachLimit<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
