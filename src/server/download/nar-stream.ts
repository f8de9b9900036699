// Reassembly of a NAR from its chunks, streamed in order with a bounded read-ahead (nar-body.ts),
// so a slow reader never makes the server buffer more than a few MiB. Chunk rows are read a page
// at a time, so a NAR of 65,000 chunks costs no more memory than one of ten. Chunks are served as stored
// (concatenated compressed streams are valid for zstd, xz and none); brotli chunks of a
// multi-chunk NAR are decompressed on the way out (decision 3), matching the `Compression: none`
// of the narinfo.
import { Readable } from "node:stream";
import { NarBody, remoteFileOf, type RepeatedChunks } from "./nar-body.ts";
export { ChunkFileLostError, remoteFileOf } from "./nar-body.ts";
import type { ServedChunk } from "../../db/queries/objects.ts";
import type { ServedNar } from "../../db/queries/objects.ts";
import type { StorageDriver } from "../../storage/types.ts";
import { servedCompression } from "../narinfo.ts";
import { chain } from "../streams.ts";
import { chunksInRange, parseRange, RangeSlice, type ByteRange, type RangeCut } from "./range.ts";

const PRESIGN_SECONDS = 600;
/** chunk rows fetched per database round trip while streaming */
export const CHUNK_PAGE = 256;

export type NarResponse =
  | { kind: "redirect"; url: string }
  /**
   * `range` (with the whole body's length) when a `Range` was honoured: a 206. `ready` (a body
   * read from storage): starts the reading and waits for its first read (NarBody.ready).
   */
  | { kind: "stream"; stream: Readable; contentLength?: number; range?: ByteRange & { total: number }; ready?: () => Promise<{ packId: number; end: number } | null> }
  | { kind: "unsatisfiable"; total: number };

/** The NAR's valid chunks after `afterSeq`, in order; `null` marks a chunk that has gone. */
export type ChunkPager = (afterSeq: number, limit: number) => Promise<{ seq: number; chunk: ServedChunk | null }[]>;

export class ChunkGoneError extends Error {
  constructor(narId: number, seq: number) {
    super(`chunk ${seq} of NAR ${narId} is gone (deleted while the NAR was being served)`);
    this.name = "ChunkGoneError";
  }
}

export async function narResponseStream(
  storage: StorageDriver,
  nar: ServedNar,
  pager: ChunkPager,
  /**
   * `presign`: null for no redirect, else the check a presigned URL must pass (redirect-policy.ts);
   * `decompress`: serve the NAR itself rather than the stored chunks (default: as the narinfo says)
   */
  opts: {
    presign: ((url: string) => boolean) | null;
    method: string;
    fileSize: number | null;
    range?: string | undefined;
    decompress?: boolean;
    /** the chunks occurring more than once in the NAR (asked only when its bytes are read) */
    repeats?: () => Promise<RepeatedChunks>;
  },
): Promise<NarResponse> {
  const decompress = opts.decompress ?? servedCompression(nar) !== nar.compression;
  if (nar.num_chunks === 1 && opts.presign && storage.presignedUrl && !decompress) {
    const [only] = await pager(-1, 1);
    // a chunk inside a pack is not a whole object: no URL can serve it alone (docs/decisions.md)
    if (only?.chunk && only.chunk.pack_id == null) {
      const url = await storage.presignedUrl(remoteFileOf(only.chunk), PRESIGN_SECONDS);
      if (url && opts.presign(url)) return { kind: "redirect", url };
    }
  }
  const contentLength = decompress ? nar.nar_size : (opts.fileSize ?? undefined);
  // a range needs the body's length, unknown only while a chunk's file size is (never for a valid NAR)
  const range = contentLength === undefined ? null : parseRange(opts.range, contentLength);
  if (range === "unsatisfiable") return { kind: "unsatisfiable", total: contentLength! };
  if (opts.method === "HEAD") return { kind: "stream", stream: Readable.from([]), contentLength };
  const decompressFrom = decompress ? nar.compression : null;
  const repeats = decompressFrom === null && nar.num_chunks > 1 ? opts.repeats?.() : undefined;
  if (range) {
    const cut: RangeCut = { skip: 0 };
    const size = decompress ? (c: ServedChunk) => c.chunk_size : (c: ServedChunk) => c.file_size ?? 0;
    const body = new NarBody(storage, chunksInRange(pagedChunks(nar.id, pager), size, range, cut), decompressFrom, repeats);
    const length = range.end - range.start + 1;
    return { kind: "stream", stream: chain(body, new RangeSlice(cut, length)), contentLength: length, range: { ...range, total: contentLength! }, ready: () => body.ready() };
  }
  const stream = new NarBody(storage, pagedChunks(nar.id, pager), decompressFrom, repeats);
  return { kind: "stream", stream, contentLength, ready: () => stream.ready() };
}

/** The NAR itself, decoded from its chunks as they stream. */
export function decodedNar(storage: StorageDriver, nar: ServedNar, pager: ChunkPager): Readable {
  return new NarBody(storage, pagedChunks(nar.id, pager), nar.compression === "none" ? null : nar.compression);
}

/**
 * Every chunk of the NAR in order, one page of rows at a time; the next page is asked for as
 * soon as a full one arrives, so the database round trip overlaps the sending of this page.
 */
async function* pagedChunks(narId: number, pager: ChunkPager): AsyncGenerator<ServedChunk> {
  let next = pager(-1, CHUNK_PAGE);
  for (;;) {
    const page = await next;
    const full = page.length === CHUNK_PAGE;
    if (full) {
      next = pager(page.at(-1)!.seq, CHUNK_PAGE);
      next.catch(() => {}); // surfaced when awaited above
    }
    for (const { seq, chunk } of page) {
      if (!chunk) throw new ChunkGoneError(narId, seq);
      yield chunk;
    }
    if (!full) return;
  }
}
