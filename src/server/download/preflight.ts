// Before the first byte of a NAR: are its chunk files still in storage? The database says every
// chunk is valid, but a file deleted or lost behind our back is known only to the storage. A NAR
// with a lost file must be a 503 IncompleteNar, never a 200 that breaks off halfway, and the loss
// is recorded (repair.ts) so get-missing-paths reports the path and the next push heals it.
//
// What is checked depends on what `has` costs: on a local folder (an access() call) every chunk
// file; on S3 (a HEAD request each) the first page of chunks only, which covers whole NARs of up
// to CHUNK_PAGE chunks (all but the largest). A file found missing later, mid-stream, aborts the
// response (the client sees a broken transfer, not a short NAR) and is recorded the same way.
// Packed chunks (docs/packs.md) are checked once per pack: the pack exists and reaches the end
// of the last of the NAR's chunks in it (a one-byte ranged read there); a pack missing or short
// loses every chunk stored in it. On cheap storage the packs come from one grouped query
// (`summary`) rather than from every chunk row, and the rows are paged only when some chunks are
// stored one per object. A pack range the download's first read already opened (NarBody.ready:
// one ranged GET that is also the first bytes served) is not checked again: a small NAR on S3
// costs one GET, not a check and a GET.
import { forEachLimit } from "../../util/concurrency.ts";
import type { RemoteFile, StorageDriver } from "../../storage/types.ts";
import { StorageNotFoundError } from "../../storage/types.ts";
import type { NarStorageSummary } from "../../db/queries/objects.ts";
import { CHUNK_PAGE, remoteFileOf, type ChunkPager } from "./nar-stream.ts";

const HAS_CONCURRENCY = 16;

/** What the preflight found lost: chunks stored one per object, and packs. */
export interface MissingFiles {
  chunks: number[];
  packs: number[];
}

/** The NAR's chunks whose files are missing, and its packs that are missing or short (see the header for how far it looks). */
export async function missingChunkFiles(
  storage: StorageDriver,
  pager: ChunkPager,
  summary?: () => Promise<NarStorageSummary>,
  /** a pack range the download's first read already proved present (NarBody.ready): not checked again */
  covered?: { packId: number; end: number } | null,
): Promise<MissingFiles> {
  const missing: MissingFiles = { chunks: [], packs: [] };
  const packsChecked = new Set<number>();
  if (summary && storage.cheapHas) {
    const { packs, unpacked } = await summary();
    await forEachLimit(packs, HAS_CONCURRENCY, async ({ packId, remoteFile, end }) => {
      if (covered?.packId === packId && end <= covered.end) return;
      if (!(await packReaches(storage, JSON.parse(remoteFile) as RemoteFile, end))) missing.packs.push(packId);
    });
    if (unpacked === 0) return missing;
    for (const { packId } of packs) packsChecked.add(packId);
  }
  let afterSeq = -1;
  for (;;) {
    const page = await pager(afterSeq, CHUNK_PAGE);
    const chunks = page.flatMap(({ chunk }) => (chunk ? [chunk] : []));
    const packs = new Map<number, { remoteFile: RemoteFile; end: number }>();
    const objects = [];
    for (const chunk of chunks) {
      if (chunk.pack_id != null && chunk.pack_remote_file && chunk.pack_offset != null) {
        if (packsChecked.has(chunk.pack_id)) continue;
        const end = chunk.pack_offset + (chunk.file_size ?? 0);
        const known = packs.get(chunk.pack_id);
        if (known) known.end = Math.max(known.end, end);
        else packs.set(chunk.pack_id, { remoteFile: JSON.parse(chunk.pack_remote_file) as RemoteFile, end });
      } else {
        objects.push(chunk);
      }
    }
    await forEachLimit([...packs], HAS_CONCURRENCY, async ([packId, { remoteFile, end }]) => {
      if (covered?.packId === packId && end <= covered.end) return;
      if (!(await packReaches(storage, remoteFile, end))) missing.packs.push(packId);
    });
    for (const packId of packs.keys()) packsChecked.add(packId);
    await forEachLimit(objects, HAS_CONCURRENCY, async (chunk) => {
      if (!(await storage.has(remoteFileOf(chunk)))) missing.chunks.push(chunk.id);
    });
    if (page.length < CHUNK_PAGE || !storage.cheapHas) return missing;
    afterSeq = page[page.length - 1]!.seq;
  }
}

/** Whether the pack exists and holds at least `end` bytes. */
async function packReaches(storage: StorageDriver, remoteFile: RemoteFile, end: number): Promise<boolean> {
  if (end <= 0) return storage.has(remoteFile);
  try {
    (await storage.getRange(remoteFile, end - 1, 1)).destroy();
    return true;
  } catch (err) {
    if (err instanceof StorageNotFoundError) return false;
    throw err;
  }
}
