// Reassembly of a NAR from its chunks, streamed in order with a small read-ahead (the next
// chunks' storage requests are started while the current one is sent), so a slow reader never
// makes the server buffer more than a few chunks. Chunk rows are read a page at a time, so a
// NAR of 65,000 chunks costs no more memory than one of ten. Chunks are served as stored
// (concatenated compressed streams are valid for zstd, xz and none); brotli chunks of a
// multi-chunk NAR are decompressed on the way out (decision 3), matching the `Compression: none`
// of the narinfo.
import { Readable } from "node:stream";
import { chain } from "../streams.ts";
import type { ChunkRow } from "../../db/schema.ts";
import type { ServedNar } from "../../db/queries/objects.ts";
import { StorageNotFoundError, type RemoteFile, type StorageDriver } from "../../storage/types.ts";
import { createDecompressor, parseNarinfoCompression } from "../../compression/index.ts";
import { servedCompression } from "../narinfo.ts";

const READ_AHEAD = 2;
const PRESIGN_SECONDS = 600;
/** chunk rows fetched per database round trip while streaming */
export const CHUNK_PAGE = 256;

export type NarResponse =
  | { kind: "redirect"; url: string }
  | { kind: "stream"; stream: Readable; contentLength?: number };

/** The NAR's valid chunks after `afterSeq`, in order; `null` marks a chunk that has gone. */
export type ChunkPager = (afterSeq: number, limit: number) => Promise<{ seq: number; chunk: ChunkRow | null }[]>;

export class ChunkGoneError extends Error {
  constructor(narId: number, seq: number) {
    super(`chunk ${seq} of NAR ${narId} is gone (deleted while the NAR was being served)`);
    this.name = "ChunkGoneError";
  }
}

/** A chunk's file was not found in storage while its NAR was being served. */
export class ChunkFileLostError extends Error {
  readonly chunkId: number;
  constructor(chunk: Pick<ChunkRow, "id" | "remote_file_id">, cause: unknown) {
    super(`the file of chunk ${chunk.id} (${chunk.remote_file_id}) is missing from storage`, { cause });
    this.name = "ChunkFileLostError";
    this.chunkId = chunk.id;
  }
}

export async function narResponseStream(
  storage: StorageDriver,
  nar: ServedNar,
  pager: ChunkPager,
  /** `presign`: null for no redirect, else the check a presigned URL must pass (redirect-policy.ts) */
  opts: { presign: ((url: string) => boolean) | null; method: string; fileSize: number | null },
): Promise<NarResponse> {
  const decompress = servedCompression(nar) !== nar.compression;
  if (nar.num_chunks === 1 && opts.presign && storage.presignedUrl && !decompress) {
    const [only] = await pager(-1, 1);
    if (only?.chunk) {
      const url = await storage.presignedUrl(remoteFileOf(only.chunk), PRESIGN_SECONDS);
      if (url && opts.presign(url)) return { kind: "redirect", url };
    }
  }
  const contentLength = decompress ? nar.nar_size : (opts.fileSize ?? undefined);
  if (opts.method === "HEAD") return { kind: "stream", stream: Readable.from([]), contentLength };
  const chunks = pagedChunks(nar.id, pager);
  const stream = Readable.from(chunkBytes(storage, chunks, decompress ? nar.compression : null), { objectMode: false });
  return { kind: "stream", stream, contentLength };
}

export function remoteFileOf(chunk: Pick<ChunkRow, "remote_file">): RemoteFile {
  return JSON.parse(chunk.remote_file) as RemoteFile;
}

/** Every chunk of the NAR in order, one page of rows at a time. */
async function* pagedChunks(narId: number, pager: ChunkPager): AsyncGenerator<ChunkRow> {
  let afterSeq = -1;
  for (;;) {
    const page = await pager(afterSeq, CHUNK_PAGE);
    for (const { seq, chunk } of page) {
      if (!chunk) throw new ChunkGoneError(narId, seq);
      yield chunk;
      afterSeq = seq;
    }
    if (page.length < CHUNK_PAGE) return;
  }
}

async function* chunkBytes(storage: StorageDriver, chunks: AsyncIterator<ChunkRow>, decompressFrom: string | null): AsyncGenerator<Buffer> {
  const controller = new AbortController();
  const pending: Promise<Readable>[] = [];
  let exhausted = false;
  const fill = async () => {
    while (pending.length < READ_AHEAD + 1 && !exhausted) {
      const next = await chunks.next();
      if (next.done) {
        exhausted = true;
        return;
      }
      const chunk = next.value;
      const p = storage.get(remoteFileOf(chunk), controller.signal, chunk.file_size ?? undefined).catch((err: unknown) => {
        throw err instanceof StorageNotFoundError ? new ChunkFileLostError(chunk, err) : err;
      });
      p.catch(() => {}); // surfaced when awaited below
      pending.push(p);
    }
  };
  try {
    await fill();
    while (pending.length > 0) {
      const source = await pending.shift()!;
      await fill();
      const body = decompressFrom ? chain(source, createDecompressor(parseNarinfoCompression(decompressFrom))) : source;
      for await (const piece of body) yield piece as Buffer;
    }
  } finally {
    controller.abort();
    for (const p of pending) p.then((s) => s.destroy(), () => {});
    await chunks.return?.(undefined);
  }
}
