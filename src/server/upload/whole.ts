// A NAR below the chunking threshold: one chunk, the whole NAR. Its bytes go through the same
// single pass on a CPU worker as a chunked upload's (validation, listing, NAR hash), compressed
// there as one stream; what comes back is the stored bytes only. A small one (≤ PACK_WHOLE_MAX)
// goes into the open pack; a larger one stays a whole object (redirectable), streamed to storage.
import { Readable } from "node:stream";
import type { UploadPathResult } from "../../api/v1.ts";
import { compressBufferHashed, createCompressor } from "../../compression/index.ts";
import type { Db } from "../../db/connect.ts";
import { transaction } from "../../db/connect.ts";
import { markChunkValid, releaseChunk, releaseChunks } from "../../db/queries/chunks.ts";
import { insertChunkRef, insertNar } from "../../db/queries/nars.ts";
import { putNarListing } from "../../db/queries/nix-files.ts";
import type { CacheRow } from "../../db/schema.ts";
import type { StorageDriver } from "../../storage/types.ts";
import type { Config } from "../config/types.ts";
import { requestError } from "../errors.ts";
import type { Metrics } from "../metrics.ts";
import { chain } from "../streams.ts";
import type { BodyReader } from "./body.ts";
import type { ChunkStore, CreatedChunks } from "./chunks.ts";
import { asUploadError, type UploadCleanup } from "./cleanup.ts";
import { ByteCounter } from "./hashing.ts";
import type { UploadInfo } from "./info.ts";
import { NarPassSession } from "./nar-pass.ts";
import { publish } from "./publish.ts";

/** a NAR stored unchunked up to this size goes into a pack; a larger one stays a whole object (redirectable) */
export const PACK_WHOLE_MAX = 4 * 1024 * 1024;

export interface WholeDeps {
  db: Db;
  storage: StorageDriver;
  config: Config;
  metrics: Metrics;
  chunks: ChunkStore;
  cleanup: UploadCleanup;
}

export async function uploadWhole(deps: WholeDeps, info: UploadInfo, cache: CacheRow, body: BodyReader, sub: string | null): Promise<UploadPathResult> {
  const { db, chunks } = deps;
  const compression = deps.config.compression;
  const created: CreatedChunks = [];
  let narId: number | null = null;
  const pass = new NarPassSession(body.take(info.nar_size), { chunking: null, compression, batchSize: 0 });
  try {
    const pending = await chunks.insertPending(info.narHash.toTypedBase16(), info.nar_size, created);
    // a small one goes into the open pack (docs/packs.md); a large one stays a whole object
    const packed = chunks.packing && info.nar_size <= PACK_WHOLE_MAX;
    // xz: the worker hands back the NAR's bytes and its compressor runs here
    const xz = compression.type === "xz";
    let frame: Buffer | null = null;
    let file: { hash: string; size: number } | null = null;
    if (packed) {
      const pieces: Buffer[] = [];
      for await (const piece of pass.output()) pieces.push(piece);
      frame = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
      if (xz) {
        const c = await compressBufferHashed("xz", compression.level, frame);
        frame = c.data;
        file = { hash: `sha256:${c.sha256}`, size: frame.length };
      }
    } else if (xz) {
      const counter = new ByteCounter(true);
      await deps.storage.put(pending.remoteFile, chain(Readable.from(pass.output()), createCompressor("xz", compression.level), counter));
      file = { hash: counter.typedHash(), size: counter.bytes };
    } else {
      await deps.storage.put(pending.remoteFile, Readable.from(pass.output()));
    }
    const { narHash, narSize, listing, fileHash, fileSize } = pass.result();
    if (!narHash.equals(info.narHash) || narSize !== info.nar_size) throw requestError("Bad chunk hash or size");
    file ??= { hash: fileHash!, size: fileSize! };
    if (frame) {
      await chunks.appendWhole(created, pending.id, frame, file.hash);
      await chunks.commitUpload(created);
    } else {
      await markChunkValid(db, pending.id, { fileHash: file.hash, fileSize: file.size });
    }
    const stored = file.size;
    await transaction(db, async (tx) => {
      narId = await insertNar(tx, { state: "V", nar_hash: info.narHash.toTypedBase16(), nar_size: info.nar_size, compression: compression.narinfoName, num_chunks: 1 });
      await insertChunkRef(tx, narId, 0, pending.id);
      if (listing) await putNarListing(tx, narId, listing);
      await publish(tx, info, cache, narId, sub, { storedBytes: stored, newChunkBytes: info.nar_size, newFileBytes: stored });
    });
    await releaseChunk(db, pending.id);
    deps.metrics.inc("attic_chunks_uploaded_total");
    return { kind: "Uploaded", file_size: stored, frac_deduplicated: null };
  } catch (err) {
    await releaseChunks(db, created.map((c) => c.id)).catch(() => {});
    await deps.cleanup.discardChunks(created);
    throw asUploadError(err, pass.received, info.nar_size, "Bad chunk hash or size");
  } finally {
    pass.close();
  }
}
