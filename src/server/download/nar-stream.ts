// Reassembly of a NAR from its chunks, streamed in order with a small read-ahead (the next
// chunks' storage requests are started while the current one is sent), so a slow reader never
// makes the server buffer more than a few chunks. Chunks are served as stored (concatenated
// compressed streams are valid for zstd, xz and none); brotli chunks of a multi-chunk NAR are
// decompressed on the way out (decision 3), matching the `Compression: none` of the narinfo.
import { Readable } from "node:stream";
import { chain } from "../streams.ts";
import type { ChunkRow, NarRow } from "../../db/schema.ts";
import type { RemoteFile, StorageDriver } from "../../storage/types.ts";
import { createDecompressor, parseNarinfoCompression } from "../../compression/index.ts";
import { servedCompression } from "../narinfo.ts";

const READ_AHEAD = 2;
const PRESIGN_SECONDS = 600;

export type NarResponse =
  | { kind: "redirect"; url: string }
  | { kind: "stream"; stream: Readable; contentLength?: number };

export async function narResponseStream(
  storage: StorageDriver,
  nar: NarRow,
  chunks: ChunkRow[],
  opts: { presign: boolean; method: string },
): Promise<NarResponse> {
  const decompress = servedCompression(nar) !== nar.compression;
  if (chunks.length === 1 && opts.presign && storage.presignedUrl && !decompress) {
    const url = await storage.presignedUrl(remoteFileOf(chunks[0]!), PRESIGN_SECONDS);
    if (url) return { kind: "redirect", url };
  }
  const contentLength = decompress ? nar.nar_size : sumFileSizes(chunks);
  if (opts.method === "HEAD") return { kind: "stream", stream: Readable.from([]), contentLength };
  const stream = Readable.from(chunkBytes(storage, chunks, decompress ? nar.compression : null), { objectMode: false });
  return { kind: "stream", stream, contentLength };
}

function sumFileSizes(chunks: ChunkRow[]): number | undefined {
  let total = 0;
  for (const c of chunks) {
    if (c.file_size === null) return undefined;
    total += c.file_size;
  }
  return total;
}

export function remoteFileOf(chunk: Pick<ChunkRow, "remote_file">): RemoteFile {
  return JSON.parse(chunk.remote_file) as RemoteFile;
}

async function* chunkBytes(storage: StorageDriver, chunks: ChunkRow[], decompressFrom: string | null): AsyncGenerator<Buffer> {
  const controller = new AbortController();
  const pending: Promise<Readable>[] = [];
  let next = 0;
  const fill = () => {
    while (pending.length < READ_AHEAD + 1 && next < chunks.length) {
      const p = storage.get(remoteFileOf(chunks[next++]!), controller.signal);
      p.catch(() => {}); // surfaced when awaited below
      pending.push(p);
    }
  };
  try {
    fill();
    while (pending.length > 0) {
      const source = await pending.shift()!;
      fill();
      const body = decompressFrom ? chain(source, createDecompressor(parseNarinfoCompression(decompressFrom))) : source;
      for await (const piece of body) yield piece as Buffer;
    }
  } finally {
    controller.abort();
    for (const p of pending) p.then((s) => s.destroy(), () => {});
  }
}
