// Independent compressed frames, one per chunk, from one reused compressor per worker. A fresh
// zstd context per chunk (zlib.zstdCompressSync) costs its setup every time; measured on 64 MiB
// of JDK modules in 64 KiB chunks, level 3: a fresh context with the size pledged 336 ms, the
// same context reset between chunks about half that. Node exposes no public way to reuse a
// context for one-shot calls, so this drives the zlib object's native handle the way Node's own
// sync functions do (writeSync with ZSTD_e_end, then reset); the frames are byte-identical to
// zstdCompressSync's (a test compares them). If a future Node changes those internals, the
// fresh-context call is used instead.
import { createHash } from "node:crypto";
import zlib from "node:zlib";

interface NativeHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void;
  reset(): void;
}

export interface FrameCompressor {
  /** One complete, independent frame of `data` (owning its memory, so it can move). */
  compress(data: Uint8Array): Uint8Array;
  /** The same frame written into `out` at `offset` (room for `frameBound` bytes there); returns its length. */
  compressInto(data: Uint8Array, out: Uint8Array, offset: number): number;
}

/** Room any codec's frame of `n` bytes fits in (zstd's bound; brotli's worst case is smaller). */
export function frameBound(n: number): number {
  return zstdBound(n) + 1024;
}

/** Output space reused by every batch of this worker (frames leave in one right-sized copy). */
let batchScratch = new Uint8Array(0);

/**
 * A batch's frames back to back in one buffer of their own (one message, one move), with each
 * frame's length and hex SHA-256.
 */
export function compressBatch(compressor: FrameCompressor, chunks: readonly Uint8Array[]): { data: Uint8Array; lengths: number[]; fileHashes: string[] } {
  const room = chunks.reduce((n, c) => n + frameBound(c.byteLength), 0);
  if (batchScratch.byteLength < room) batchScratch = new Uint8Array(room);
  const lengths: number[] = [];
  let at = 0;
  for (const c of chunks) {
    const n = compressor.compressInto(c, batchScratch, at);
    lengths.push(n);
    at += n;
  }
  const data = batchScratch.slice(0, at);
  const fileHashes: string[] = [];
  at = 0;
  for (const n of lengths) {
    fileHashes.push(createHash("sha256").update(data.subarray(at, at + n)).digest("hex"));
    at += n;
  }
  return { data, lengths, fileHashes };
}

/** zstd's worst case for `n` input bytes (ZSTD_COMPRESSBOUND). */
function zstdBound(n: number): number {
  return n + (n >>> 8) + (n < 128 * 1024 ? (128 * 1024 - n) >>> 11 : 0) + 64;
}

function owned(out: Buffer): Uint8Array {
  return out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? out : new Uint8Array(out);
}

class ReusedZstd implements FrameCompressor {
  private readonly handle: NativeHandle;
  /** [availOut, availIn] after each writeSync */
  private readonly state: Uint32Array;
  private readonly level: number;
  /** output space reused by every chunk; each frame leaves in a right-sized copy */
  private scratch = new Uint8Array(0);

  constructor(level: number, handle: NativeHandle, state: Uint32Array) {
    this.level = level;
    this.handle = handle;
    this.state = state;
  }

  compress(data: Uint8Array): Uint8Array {
    const cap = zstdBound(data.byteLength);
    if (this.scratch.byteLength < cap) this.scratch = new Uint8Array(cap);
    const n = this.compressInto(data, this.scratch, 0);
    // the frame's own memory (it moves to the pack writer), right-sized
    return this.scratch.slice(0, n);
  }

  compressInto(data: Uint8Array, out: Uint8Array, offset: number): number {
    const cap = zstdBound(data.byteLength);
    this.handle.writeSync(zlib.constants.ZSTD_e_end, data, 0, data.byteLength, out, offset, cap);
    const availOut = this.state[0]!;
    const availIn = this.state[1]!;
    this.handle.reset();
    // within the bound, one call ends the frame; anything else is not a frame: the safe path
    if (availIn !== 0 || availOut === 0) {
      const frame = zlib.zstdCompressSync(data, zstdOptions(this.level, data.byteLength));
      out.set(frame, offset);
      return frame.byteLength;
    }
    return cap - availOut;
  }
}

function zstdOptions(level: number, size: number): zlib.ZstdOptions {
  return { pledgedSrcSize: size, params: { [zlib.constants.ZSTD_c_compressionLevel]: level } };
}

class FreshContext implements FrameCompressor {
  private readonly type: "zstd" | "brotli";
  private readonly level: number;

  constructor(type: "zstd" | "brotli", level: number) {
    this.type = type;
    this.level = level;
  }

  compress(data: Uint8Array): Uint8Array {
    const out =
      this.type === "zstd"
        ? zlib.zstdCompressSync(data, zstdOptions(this.level, data.byteLength))
        : zlib.brotliCompressSync(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: this.level, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.byteLength } });
    return owned(out);
  }

  compressInto(data: Uint8Array, out: Uint8Array, offset: number): number {
    const frame = this.compress(data);
    out.set(frame, offset);
    return frame.byteLength;
  }
}

/** Uncompressed: a copy of its own (a chunk views a piece other chunks share, which cannot move). */
class Identity implements FrameCompressor {
  compress(data: Uint8Array): Uint8Array {
    return Uint8Array.from(data);
  }

  compressInto(data: Uint8Array, out: Uint8Array, offset: number): number {
    out.set(data, offset);
    return data.byteLength;
  }
}

const cache = new Map<string, FrameCompressor>();

/** This worker's compressor for `type` at `level` (made once, reused by every job). */
export function frameCompressor(type: "zstd" | "brotli" | "none", level: number): FrameCompressor {
  const key = `${type}/${level}`;
  let c = cache.get(key);
  if (!c) {
    c = type === "none" ? new Identity() : type === "zstd" ? (reusedZstd(level) ?? new FreshContext(type, level)) : new FreshContext(type, level);
    cache.set(key, c);
  }
  return c;
}

/** A compressor stream driven by sync calls on this thread (a whole NAR's one frame). */
export interface SyncStream {
  /** The output `input` produced (pieces that own their memory); `last` ends the frame. */
  write(input: Uint8Array, last: boolean): Uint8Array[];
}

class HandleStream implements SyncStream {
  private readonly handle: NativeHandle;
  private readonly state: Uint32Array;
  private readonly flags: { more: number; end: number };
  private readonly scratch: Uint8Array;

  constructor(handle: NativeHandle, state: Uint32Array, pieceSize: number, flags: { more: number; end: number }) {
    this.handle = handle;
    this.state = state;
    this.scratch = new Uint8Array(pieceSize);
    this.flags = flags;
  }

  write(input: Uint8Array, last: boolean): Uint8Array[] {
    const out: Uint8Array[] = [];
    const flush = last ? this.flags.end : this.flags.more;
    let inOff = 0;
    let inLen = input.byteLength;
    for (;;) {
      const piece = this.scratch;
      this.handle.writeSync(flush, input, inOff, inLen, piece, 0, piece.byteLength);
      const availOut = this.state[0]!;
      const availIn = this.state[1]!;
      const n = piece.byteLength - availOut;
      // the output leaves in a right-sized copy; the scratch space serves every call
      if (n > 0) out.push(piece.slice(0, n));
      inOff += inLen - availIn;
      inLen = availIn;
      // a full output piece may mean more to come; otherwise all input was taken (and flushed)
      if (availOut > 0 && availIn === 0) return out;
    }
  }
}

/** A streaming zstd or brotli compressor on this thread. */
export function syncStream(type: "zstd" | "brotli", level: number, pieceSize: number): SyncStream {
  const engine = (
    type === "zstd"
      ? zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: level } })
      : zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level } })
  ) as unknown as { _handle?: NativeHandle; _writeState?: Uint32Array };
  const handle = engine._handle;
  const state = engine._writeState;
  // Node's own sync zlib calls drive the handle this way; a Node that changed it fails loudly here
  if (!handle || typeof handle.writeSync !== "function" || !(state instanceof Uint32Array)) throw new Error("node:zlib's stream internals changed: cannot compress a whole NAR on a worker");
  const flags =
    type === "zstd"
      ? { more: zlib.constants.ZSTD_e_continue, end: zlib.constants.ZSTD_e_end }
      : { more: zlib.constants.BROTLI_OPERATION_PROCESS, end: zlib.constants.BROTLI_OPERATION_FINISH };
  return new HandleStream(handle, state, pieceSize, flags);
}

function reusedZstd(level: number): FrameCompressor | null {
  const engine = zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }) as unknown as {
    _handle?: NativeHandle;
    _writeState?: Uint32Array;
  };
  const handle = engine._handle;
  const state = engine._writeState;
  if (!handle || typeof handle.writeSync !== "function" || typeof handle.reset !== "function" || !(state instanceof Uint32Array)) return null;
  return new ReusedZstd(level, handle, state);
}
