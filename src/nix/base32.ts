// Nix's base32 ("nix32"): its own alphabet (no e, o, u, t) and its own bit order. The last
// character holds the lowest 5 bits of the first byte, so it is not RFC 4648 base32 read
// backwards; encoding and decoding follow Nix's printHash32 / parseHash32 bit layout.

export const NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";

const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++) DIGIT[NIX32_ALPHABET.charCodeAt(i)] = i;

export class Nix32Error extends Error {
  readonly kind: "bad-characters" | "bad-length";
  constructor(kind: "bad-characters" | "bad-length", message: string) {
    super(message);
    this.name = "Nix32Error";
    this.kind = kind;
  }
}

/** Number of nix32 characters needed for `byteLength` bytes. */
export function nix32EncodedLength(byteLength: number): number {
  return byteLength === 0 ? 0 : Math.floor((byteLength * 8 - 1) / 5) + 1;
}

export function nix32Encode(bytes: Uint8Array): string {
  const len = nix32EncodedLength(bytes.length);
  let s = "";
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const lo = bytes[i]! >> j;
    const hi = i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0;
    s += NIX32_ALPHABET[(lo | hi) & 0x1f];
  }
  return s;
}

export function nix32Decode(s: string): Buffer {
  const size = Math.floor((s.length * 5) / 8);
  if (nix32EncodedLength(size) !== s.length) {
    throw new Nix32Error("bad-length", `a nix32 string cannot have ${s.length} characters`);
  }
  const out = Buffer.alloc(size);
  for (let n = 0; n < s.length; n++) {
    const code = s.charCodeAt(s.length - n - 1);
    const digit = code < 128 ? DIGIT[code]! : -1;
    if (digit < 0) {
      throw new Nix32Error("bad-characters", `invalid nix32 character '${s[s.length - n - 1]}' in '${s}'`);
    }
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] = out[i]! | ((digit << j) & 0xff);
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1] = out[i + 1]! | carry;
    else if (carry !== 0) {
      // The leading character carries bits beyond the last byte: no byte string encodes to this.
      throw new Nix32Error("bad-characters", `invalid nix32 string '${s}': value does not fit in ${size} bytes`);
    }
  }
  return out;
}

