// The NAR wire format shared by the serializer and the parser. Every field is a "string":
// a u64 little-endian length, the bytes, then zero padding to a multiple of 8.
//
//   nar       = str("nix-archive-1") node
//   node      = str("(") str("type") (regular | symlink | directory) str(")")
//   regular   = str("regular") [str("executable") str("")] str("contents") str(<file bytes>)
//   symlink   = str("symlink") str("target") str(<target>)
//   directory = str("directory") { str("entry") str("(") str("name") str(<name>) str("node") node str(")") }
//
// Directory entries are sorted by name as byte strings, without duplicates.

export const NAR_MAGIC = "nix-archive-1";

/** Longest entry name we accept (NAME_MAX on Linux). */
export const NAR_MAX_NAME = 255;
/** Longest symlink target we accept (PATH_MAX on Linux). */
export const NAR_MAX_TARGET = 4096;
/** Deepest directory nesting we accept; bounds the parser's memory. */
export const NAR_MAX_DEPTH = 4096;

export function padding(len: number): number {
  return (8 - (len % 8)) % 8;
}

/** Bytes of `str(s)` for a short string `s`. */
export function encodedStringLength(byteLength: number): number {
  return 8 + byteLength + padding(byteLength);
}

/** Writes `str(bytes)` into `out` at `offset`; returns the offset after it. */
export function writeString(out: Buffer, offset: number, bytes: Uint8Array): number {
  writeU64(out, offset, bytes.length);
  out.set(bytes, offset + 8);
  const end = offset + 8 + bytes.length;
  const pad = padding(bytes.length);
  out.fill(0, end, end + pad);
  return end + pad;
}

/** Encodes a sequence of short strings (keywords, names, targets) as one buffer. */
export function encodeStrings(parts: readonly (string | Uint8Array)[]): Buffer {
  const bytes = parts.map((p) => (typeof p === "string" ? Buffer.from(p) : p));
  let total = 0;
  for (const b of bytes) total += encodedStringLength(b.length);
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const b of bytes) offset = writeString(out, offset, b);
  return out;
}

/** Writes a u64 little-endian length (up to 2^53 - 1) at `offset`. */
export function writeU64(out: Buffer, offset: number, n: number): void {
  out.writeUInt32LE(n % 0x1_0000_0000, offset);
  out.writeUInt32LE(Math.floor(n / 0x1_0000_0000), offset + 4);
}
