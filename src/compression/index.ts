// The compression room: the four codecs a chunk can be stored in, as streams and as one-shot
// buffers. Each chunk is compressed on its own, so a multi-chunk NAR is served as concatenated
// frames (zstd, xz) which Nix and the reference CLIs decode whole. Decompressors here decode ONE
// chunk: Node's zstd decoder, one-shot and stream alike, stops after the first frame without an
// error (measured on Node 24.21: two frames of 600,000 and 300,000 bytes decode to 600,000), so
// callers that must decompress a multi-chunk NAR do it chunk by chunk.
import { PassThrough, Readable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { createHash } from "node:crypto";
import lzma from "lzma-native";
import { compressHashedOnWorker, compressOnWorker } from "./pool.ts";

/** Names used in server.toml. */
export type CompressionType = "none" | "brotli" | "zstd" | "xz";
/** Names used in narinfo `Compression:` and stored in the `nar`/`chunk` rows. */
export type NarinfoCompression = "none" | "br" | "zstd" | "xz";

export const COMPRESSION_TYPES: readonly CompressionType[] = ["none", "brotli", "zstd", "xz"];

/** Accepted level range and upstream's default level per type; `none` ignores its level. */
export const LEVEL_RANGE: Readonly<Record<CompressionType, { min: number; max: number; default: number }>> = {
  none: { min: 0, max: 0, default: 0 },
  zstd: { min: 1, max: 22, default: 8 },
  brotli: { min: 0, max: 11, default: 5 },
  xz: { min: 0, max: 9, default: 2 },
};

export class UnknownCompressionError extends Error {
  constructor(name: string) {
    super(`unknown compression "${name}" (expected one of none, br, zstd, xz)`);
    this.name = "UnknownCompressionError";
  }
}

export function narinfoCompressionName(type: CompressionType): NarinfoCompression {
  return type === "brotli" ? "br" : type;
}

export function parseNarinfoCompression(name: string): NarinfoCompression {
  if (name === "none" || name === "br" || name === "zstd" || name === "xz") return name;
  throw new UnknownCompressionError(name);
}

/** Output piece size for zlib streams: big pieces keep per-call overhead low on large NARs. */
const ZLIB_CHUNK = 256 * 1024;

function checkLevel(type: CompressionType, level: number): void {
  const range = LEVEL_RANGE[type];
  if (type !== "none" && (!Number.isInteger(level) || level < range.min || level > range.max)) {
    throw new RangeError(`compression level for ${type} must be an integer within ${range.min}..${range.max} (got ${level})`);
  }
}

/** A Transform that compresses whatever passes through it into one frame/stream. */
export function createCompressor(type: CompressionType, level: number): Transform {
  checkLevel(type, level);
  switch (type) {
    case "none":
      return new PassThrough();
    case "zstd":
      return zlib.createZstdCompress({ chunkSize: ZLIB_CHUNK, params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
    case "brotli":
      return zlib.createBrotliCompress({ chunkSize: ZLIB_CHUNK, params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } });
    case "xz":
      return lzma.createCompressor({ preset: level, check: lzma.CHECK_CRC64, threads: 1 }) as Transform;
  }
}

/** A Transform that decodes one chunk stored with `compression` (a single frame or stream). */
export function createDecompressor(compression: NarinfoCompression): Transform {
  switch (compression) {
    case "none":
      return new PassThrough();
    case "zstd":
      return zlib.createZstdDecompress({ chunkSize: ZLIB_CHUNK });
    case "br":
      return zlib.createBrotliDecompress({ chunkSize: ZLIB_CHUNK });
    case "xz":
      return lzma.createDecompressor({ threads: 1 }) as Transform;
  }
}

async function collect(source: Readable, transform: Transform): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(source, transform, async (input: AsyncIterable<Buffer>) => {
    for await (const part of input) parts.push(part);
  });
  return Buffer.concat(parts);
}

/**
 * Compresses one chunk held in memory (chunks are bounded by `chunking.max-size`). zstd and
 * brotli run as synchronous calls in a worker pool (pool.ts): measured here, Node's async
 * one-shot zstd costs 4-8 ms per 64 KiB chunk (a fresh native context per call) and far more
 * when ten run at once, while the sync call takes about 0.1 ms; the pool spreads them over cores.
 * `data` is consumed: for zstd and brotli its memory may move to a worker thread (length 0 after).
 */
export async function compressBuffer(type: CompressionType, level: number, data: Uint8Array): Promise<Buffer> {
  checkLevel(type, level);
  switch (type) {
    case "none":
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    case "zstd":
    case "brotli":
      return await compressOnWorker(type, level, data);
    case "xz":
      return await collect(Readable.from([Buffer.from(data.buffer, data.byteOffset, data.byteLength)]), createCompressor("xz", level));
  }
}

/**
 * `compressBuffer`, and the SHA-256 (hex) of the result: for zstd and brotli computed in the
 * worker that compressed it, so an upload's main thread never hashes compressed bytes.
 */
export async function compressBufferHashed(type: CompressionType, level: number, data: Uint8Array): Promise<{ data: Buffer; sha256: string }> {
  checkLevel(type, level);
  if (type === "zstd" || type === "brotli") {
    const { out, sha256 } = await compressHashedOnWorker(type, level, data);
    return { data: out, sha256 };
  }
  const out = await compressBuffer(type, level, data);
  return { data: out, sha256: createHash("sha256").update(out).digest("hex") };
}

/** Decodes one chunk held in memory. */
export async function decompressBuffer(compression: NarinfoCompression, data: Uint8Array): Promise<Buffer> {
  switch (compression) {
    case "none":
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    case "zstd":
      return zlib.zstdDecompressSync(data);
    case "br":
      return zlib.brotliDecompressSync(data);
    case "xz":
      return await collect(Readable.from([Buffer.from(data.buffer, data.byteOffset, data.byteLength)]), createDecompressor("xz"));
  }
}
