// `atticadm verify` (ours): re-check what storage holds against the database. Chunk pass: every
// valid chunk's file is re-read and its size and sha256 compared with the row (or, quick, only
// its existence checked). Pack pass: every sealed pack's valid chunks are re-read in runs of
// adjacent ranges and each frame checked the same way (quick: the pack's last live byte is read,
// so a missing or short pack is found); a valid chunk in a retired or missing pack is broken. NAR pass (optional): every served NAR is reassembled from its chunks,
// decompressed, and its size and sha256 compared with its NarHash. With `repair`, what is broken
// is marked for re-upload (db/queries/repair.ts): get-missing-paths then reports the paths, and
// the next `attic push` heals them. Streaming throughout: one page of rows and a few files in
// flight, whatever the size of the cache.
import { createHash } from "node:crypto";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import type { Db } from "../../db/connect.ts";
import { findNarChunks } from "../../db/queries/objects.ts";
import {
  markChunksLost,
  markNarsIncomplete,
  pathsOfNars,
  pathsUsingChunks,
  servedNarsAfter,
  validChunksAfter,
  type AffectedPath,
} from "../../db/queries/repair.ts";
import type { ChunkRow, NarRow } from "../../db/schema.ts";
import { createDecompressor, parseNarinfoCompression } from "../../compression/index.ts";
import { forEachLimit } from "../../util/concurrency.ts";
import { StorageNotFoundError, type RemoteFile, type StorageDriver } from "../../storage/types.ts";
import { openChunk } from "../../storage/packs.ts";
import { packLocation } from "../../db/queries/packs.ts";
import { remoteFileOf } from "../../server/download/nar-stream.ts";
import { chunksInUnsealedPacks, liveChunksOfPack, sealedPacksAfter, type LiveChunk, type PackRef } from "../../db/queries/pack-gc.ts";
import { frameMatches, parseRemoteFile, runsOf } from "../../gc/compact.ts";
import { readPackRange } from "../../gc/pack-io.ts";

const CHUNK_PAGE = 256;
const NAR_PAGE = 32;
const CHUNK_CONCURRENCY = 8;
const NAR_CONCURRENCY = 2;
const PACK_PAGE = 32;

export interface VerifyOptions {
  /** only check that each chunk file exists (no re-read) */
  quick: boolean;
  /** also reassemble every served NAR and check it against its NarHash */
  nars: boolean;
  /** mark what is broken for re-upload */
  repair: boolean;
}

export interface VerifyReport {
  chunks: number;
  bytes: number;
  /** sealed packs checked */
  packs: number;
  brokenChunks: number;
  nars: number;
  brokenNars: number;
  /** store paths whose NAR uses something broken (counted once per problem found) */
  affectedPaths: number;
}

interface Sha {
  hash: string;
  size: number;
}

async function hashOf(source: AsyncIterable<Buffer> | NodeJS.ReadableStream, hash = createHash("sha256")): Promise<number> {
  let size = 0;
  await pipeline(
    source,
    new Writable({
      write(piece: Buffer, _enc, done) {
        hash.update(piece);
        size += piece.length;
        done();
      },
    }),
  );
  return size;
}

/** The chunk's stored bytes: its own file, or its range of its pack (docs/packs.md). */
async function openStored(db: Db, storage: StorageDriver, chunk: ChunkRow): Promise<NodeJS.ReadableStream> {
  const pack = await packLocation(db, chunk.id);
  return openChunk(storage, {
    remoteFile: remoteFileOf(chunk),
    pack: pack && { remoteFile: JSON.parse(pack.remoteFile) as RemoteFile, offset: pack.offset },
    size: chunk.file_size,
  });
}

async function fileSha(db: Db, storage: StorageDriver, chunk: ChunkRow): Promise<Sha> {
  const hash = createHash("sha256");
  const size = await hashOf(await openStored(db, storage, chunk), hash);
  return { hash: `sha256:${hash.digest("hex")}`, size };
}

/** What is wrong with the chunk's file, or null when it matches its row. */
async function chunkProblem(db: Db, storage: StorageDriver, chunk: ChunkRow, quick: boolean): Promise<{ problem: string | null; bytes: number }> {
  if (quick && (await packLocation(db, chunk.id)) === null) return { problem: (await storage.has(remoteFileOf(chunk))) ? null : "missing", bytes: 0 };
  let sha: Sha;
  try {
    sha = await fileSha(db, storage, chunk);
  } catch (err) {
    if (err instanceof StorageNotFoundError) return { problem: "missing", bytes: 0 };
    throw err;
  }
  if (chunk.file_size !== null && sha.size !== chunk.file_size) return { problem: `size ${sha.size}, expected ${chunk.file_size}`, bytes: sha.size };
  if (chunk.file_hash !== null && sha.hash !== chunk.file_hash.toLowerCase()) return { problem: `hash ${sha.hash}, expected ${chunk.file_hash}`, bytes: sha.size };
  return { problem: null, bytes: sha.size };
}

/** What is wrong with a pack's valid chunks: missing or short pack, or frames that do not match. */
async function packProblems(
  storage: StorageDriver,
  pack: PackRef,
  chunks: readonly LiveChunk[],
  quick: boolean,
  read: (bytes: number) => void,
): Promise<{ chunk: Pick<ChunkRow, "id" | "remote_file_id">; problem: string }[]> {
  const remoteFile = parseRemoteFile(pack.remoteFile);
  const label = (c: LiveChunk) => ({ id: c.id, remote_file_id: `pack ${pack.id} at ${c.offset}` });
  const whole = (problem: string) => chunks.map((c) => ({ chunk: label(c), problem }));
  if (chunks.length === 0) return [];
  if (quick) {
    const end = Math.max(...chunks.map((c) => c.offset + c.length));
    try {
      await readPackRange(storage, remoteFile, end - 1, 1);
      return [];
    } catch (err) {
      if (err instanceof StorageNotFoundError) return whole("pack missing or short");
      throw err;
    }
  }
  const broken: { chunk: Pick<ChunkRow, "id" | "remote_file_id">; problem: string }[] = [];
  for (const run of runsOf(chunks)) {
    const first = run[0]!;
    const last = run[run.length - 1]!;
    let bytes: Buffer;
    try {
      bytes = await readPackRange(storage, remoteFile, first.offset, last.offset + last.length - first.offset);
    } catch (err) {
      if (!(err instanceof StorageNotFoundError)) throw err;
      for (const c of run) broken.push({ chunk: label(c), problem: "pack missing or short" });
      continue;
    }
    read(bytes.length);
    for (const c of run) {
      if (!frameMatches(bytes.subarray(c.offset - first.offset, c.offset - first.offset + c.length), c)) {
        broken.push({ chunk: label(c), problem: `bytes do not match the chunk's hash` });
      }
    }
  }
  return broken;
}

/** The NAR as stored, decompressed chunk by chunk, in order. */
class KnownBrokenError extends Error {}

async function* narBytes(db: Db, storage: StorageDriver, nar: NarRow, known: ReadonlySet<number>, lost: (chunk: ChunkRow) => void): AsyncGenerator<Buffer> {
  let afterSeq = -1;
  for (;;) {
    const page = await findNarChunks(db, nar.id, { afterSeq, limit: CHUNK_PAGE });
    for (const { seq, chunk } of page) {
      if (!chunk || known.has(chunk.id)) throw new KnownBrokenError();
      let file;
      try {
        file = await openStored(db, storage, chunk);
      } catch (err) {
        if (err instanceof StorageNotFoundError) lost(chunk);
        throw err;
      }
      const plain = file.pipe(createDecompressor(parseNarinfoCompression(chunk.compression)));
      file.once("error", (err) => plain.destroy(err));
      for await (const piece of plain) yield piece as Buffer;
      afterSeq = seq;
    }
    if (page.length < CHUNK_PAGE) return;
  }
}

export async function verifyStorage(
  deps: { db: Db; storage: StorageDriver },
  options: VerifyOptions,
  out: (line: string) => void,
): Promise<VerifyReport> {
  const { db, storage } = deps;
  const report: VerifyReport = { chunks: 0, bytes: 0, packs: 0, brokenChunks: 0, nars: 0, brokenNars: 0, affectedPaths: 0 };
  /** chunks reported broken: a NAR using one is not reported again */
  const known = new Set<number>();
  const printPaths = (paths: AffectedPath[]) => {
    report.affectedPaths += paths.length;
    for (const p of paths) out(`  used by ${p.cache}: ${p.storePath}`);
  };
  const lostChunks = async (broken: { chunk: Pick<ChunkRow, "id" | "remote_file_id">; problem: string }[]) => {
    if (broken.length === 0) return;
    report.brokenChunks += broken.length;
    for (const b of broken) known.add(b.chunk.id);
    for (const { chunk, problem } of broken) out(`chunk ${chunk.id} (${chunk.remote_file_id}): ${problem}`);
    printPaths(await pathsUsingChunks(db, broken.map((b) => b.chunk.id)));
    if (options.repair) await markChunksLost(db, broken.map((b) => b.chunk.id));
  };

  let afterId = 0;
  for (;;) {
    const page = await validChunksAfter(db, afterId, CHUNK_PAGE, { unpackedOnly: true });
    const broken: { chunk: ChunkRow; problem: string }[] = [];
    await forEachLimit(page, CHUNK_CONCURRENCY, async (chunk) => {
      const { problem, bytes } = await chunkProblem(db, storage, chunk, options.quick);
      report.bytes += bytes;
      if (problem) broken.push({ chunk, problem });
    });
    report.chunks += page.length;
    broken.sort((a, b) => a.chunk.id - b.chunk.id);
    await lostChunks(broken);
    if (page.length < CHUNK_PAGE) break;
    afterId = page[page.length - 1]!.id;
  }

  let afterPack = 0;
  for (;;) {
    const packs = await sealedPacksAfter(db, afterPack, PACK_PAGE);
    for (const pack of packs) {
      const chunks = await liveChunksOfPack(db, pack.id);
      const broken = await packProblems(storage, pack, chunks, options.quick, (n) => (report.bytes += n));
      report.packs++;
      report.chunks += chunks.length;
      await lostChunks(broken);
    }
    if (packs.length < PACK_PAGE) break;
    afterPack = packs[packs.length - 1]!.id;
  }
  for (;;) {
    const stray = (await chunksInUnsealedPacks(db, CHUNK_PAGE)).filter((c) => !known.has(c.id));
    if (stray.length === 0) break;
    report.chunks += stray.length;
    await lostChunks(stray.map((c) => ({ chunk: { id: c.id, remote_file_id: c.remoteFileId }, problem: `its pack ${c.packId} is retired or gone` })));
    // without --repair the rows stay as they are: stop after one page rather than loop on them
    if (!options.repair) break;
  }

  if (options.nars) {
    let afterNar = 0;
    for (;;) {
      const page = await servedNarsAfter(db, afterNar, NAR_PAGE);
      await forEachLimit(page, NAR_CONCURRENCY, async (nar) => {
        const missing: ChunkRow[] = [];
        let problem: string | null = null;
        try {
          const hash = createHash("sha256");
          const size = await hashOf(narBytes(db, storage, nar, known, (c) => missing.push(c)), hash);
          const digest = `sha256:${hash.digest("hex")}`;
          if (size !== nar.nar_size) problem = `NAR size ${size}, expected ${nar.nar_size}`;
          else if (digest !== nar.nar_hash.toLowerCase()) problem = `NAR hash ${digest}, expected ${nar.nar_hash}`;
        } catch (err) {
          if (err instanceof KnownBrokenError) return;
          problem = `cannot be reassembled: ${(err as Error).message}`;
        }
        report.nars++;
        if (missing.length > 0) {
          await lostChunks(missing.map((chunk) => ({ chunk, problem: "missing" })));
          return;
        }
        if (!problem) return;
        report.brokenNars++;
        out(`NAR ${nar.id} (${nar.nar_hash}): ${problem}`);
        printPaths(await pathsOfNars(db, [nar.id]));
        if (options.repair) await markNarsIncomplete(db, [nar.id]);
      });
      if (page.length < NAR_PAGE) break;
      afterNar = page[page.length - 1]!.id;
    }
  }
  return report;
}
