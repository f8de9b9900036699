// Before the first byte of a NAR: are its chunk files still in storage? The database says every
// chunk is valid, but a file deleted or lost behind our back is known only to the storage. A NAR
// with a lost file must be a 503 IncompleteNar, never a 200 that breaks off halfway, and the loss
// is recorded (repair.ts) so get-missing-paths reports the path and the next push heals it.
//
// What is checked depends on what `has` costs: on a local folder (an access() call) every chunk
// file; on S3 (a HEAD request each) the first page of chunks only, which covers whole NARs of up
// to CHUNK_PAGE chunks (all but the largest). A file found missing later, mid-stream, aborts the
// response (the client sees a broken transfer, not a short NAR) and is recorded the same way.
import { forEachLimit } from "../../util/concurrency.ts";
import type { StorageDriver } from "../../storage/types.ts";
import { CHUNK_PAGE, remoteFileOf, type ChunkPager } from "./nar-stream.ts";

const HAS_CONCURRENCY = 16;

/** The ids of the NAR's chunks whose files are missing (see the header for how far it looks). */
export async function missingChunkFiles(storage: StorageDriver, pager: ChunkPager): Promise<number[]> {
  const missing: number[] = [];
  let afterSeq = -1;
  for (;;) {
    const page = await pager(afterSeq, CHUNK_PAGE);
    const chunks = page.flatMap(({ chunk }) => (chunk ? [chunk] : []));
    await forEachLimit(chunks, HAS_CONCURRENCY, async (chunk) => {
      if (!(await storage.has(remoteFileOf(chunk)))) missing.push(chunk.id);
    });
    if (page.length < CHUNK_PAGE || !storage.cheapHas) return missing;
    afterSeq = page[page.length - 1]!.seq;
  }
}
