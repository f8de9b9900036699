// An .xz file that stores its data instead of compressing it: one stream, one block, LZMA2
// "uncompressed" chunks of up to 64 KiB, a CRC32 check (the .xz file format 1.0.4, sections 2-3,
// and LZMA2's chunk headers). Any xz decoder reads it (xz, liblzma in Nix, lzma-native). Encoding
// xz at its cheapest preset costs about 6 MB of input per CPU-second here, slower than most
// networks (bench/nix-file-transcode.ts); this costs a CRC32 and the framing, and sends the
// input's size. Used where a file must be xz but need not be small (nix-file-encode.ts).
import { Transform, type TransformCallback } from "node:stream";
import zlib from "node:zlib";

const HEADER_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const FOOTER_MAGIC = Buffer.from([0x59, 0x5a]);
/** Stream Flags: no reserved bits, check type CRC32 (0x01) */
const STREAM_FLAGS = Buffer.from([0x00, 0x01]);
const CHECK_SIZE = 4;
/** LZMA2 uncompressed chunk: 0x01 resets the dictionary (the first), 0x02 does not */
const CHUNK_RESET = 0x01;
const CHUNK_PLAIN = 0x02;
const CHUNK_MAX = 64 * 1024;
/**
 * Block header: size byte ((12 / 4) - 1), flags (one filter, no sizes), filter LZMA2 (0x21) with
 * one property byte, the dictionary size 64 KiB (0x08), three bytes of padding, then its CRC32.
 */
const BLOCK_HEADER = withCrc(Buffer.from([0x02, 0x00, 0x21, 0x01, 0x08, 0x00, 0x00, 0x00]));

function crc32(data: Buffer, value = 0): number {
  return zlib.crc32(data, value);
}

function withCrc(data: Buffer): Buffer {
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(data));
  return Buffer.concat([data, crc]);
}

/** The .xz multibyte integer: 7 bits a byte, least significant first. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

function padding(size: number): Buffer {
  return Buffer.alloc((4 - (size % 4)) % 4);
}

export class XzStoredEncoder extends Transform {
  private started = false;
  private crc = 0;
  private uncompressed = 0;
  /** LZMA2 bytes written (chunk headers and data) */
  private compressed = 0;

  override _transform(piece: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (piece.length === 0) return cb();
    if (!this.started) this.push(Buffer.concat([HEADER_MAGIC, STREAM_FLAGS, crcOf(STREAM_FLAGS), BLOCK_HEADER]));
    for (let at = 0; at < piece.length; at += CHUNK_MAX) {
      const data = piece.subarray(at, at + CHUNK_MAX);
      const header = Buffer.from([this.started ? CHUNK_PLAIN : CHUNK_RESET, (data.length - 1) >> 8, (data.length - 1) & 0xff]);
      this.started = true;
      this.push(header);
      this.push(data);
      this.compressed += header.length + data.length;
    }
    this.crc = crc32(piece, this.crc);
    this.uncompressed += piece.length;
    cb();
  }

  override _flush(cb: TransformCallback): void {
    const parts: Buffer[] = [];
    if (!this.started) {
      // an empty input: a stream with no block at all
      parts.push(HEADER_MAGIC, STREAM_FLAGS, crcOf(STREAM_FLAGS));
      parts.push(...this.indexAndFooter([]));
    } else {
      parts.push(Buffer.from([0x00])); // LZMA2 end marker
      this.compressed += 1;
      const unpadded = BLOCK_HEADER.length + this.compressed + CHECK_SIZE;
      const check = Buffer.alloc(4);
      check.writeUInt32LE(this.crc);
      parts.push(padding(BLOCK_HEADER.length + this.compressed), check);
      parts.push(...this.indexAndFooter([[unpadded, this.uncompressed]]));
    }
    cb(null, Buffer.concat(parts));
  }

  private indexAndFooter(records: [number, number][]): Buffer[] {
    const body = Buffer.from([0x00, ...varint(records.length), ...records.flatMap(([u, n]) => [...varint(u), ...varint(n)])]);
    const index = withCrc(Buffer.concat([body, padding(body.length)]));
    const tail = Buffer.alloc(6);
    tail.writeUInt32LE(index.length / 4 - 1, 0);
    STREAM_FLAGS.copy(tail, 4);
    return [index, crcOf(tail), tail, FOOTER_MAGIC];
  }
}

function crcOf(data: Buffer): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(crc32(data));
  return out;
}
