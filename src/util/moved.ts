// Buffers moved in from a worker whose bytes are freed the moment their last reader is done with
// them, not when V8 collects their wrappers. A batch's frames come to the main thread in one moved
// ArrayBuffer (workers/jobs.ts); once they are appended to a pack (copied into the writer's part
// buffers or written to its file) they are dead, but V8 only frees a dead buffer's bytes at a
// collection, and it lets some 64 MiB of dead external memory pile up before it runs one: on the
// 2 GiB push to S3 that was 30-50 MiB of the main thread's peak. Detaching a buffer
// (`transfer(0)`) frees its bytes at once. Only buffers adopted here are ever detached, so a view
// of a buffer someone else shares (a Buffer pool's slab) is never touched.
const adopted = new WeakSet<ArrayBufferLike>();

/** `buffer` was moved in and is viewed only by what its receiver hands out (see `release`). */
export function adopt(buffer: ArrayBufferLike): void {
  adopted.add(buffer);
}

/**
 * Every reader of these views is done (they were copied or written, and nothing keeps them): the
 * adopted buffers under them are freed now. Call only once no write still reads them (never on a
 * failure path, where a request may still be sending them).
 */
export function release(views: Iterable<{ buffer: ArrayBufferLike }>): void {
  for (const view of views) {
    const buffer = view.buffer;
    if (adopted.delete(buffer)) (buffer as ArrayBuffer).transfer(0);
  }
}
