// Nix hashes in every spelling Nix prints or accepts: base16, nix32, base64, SRI
// (`sha256-<base64>`) and typed (`sha256:<any of the three>`). As in Nix, the encoding of a
// typed or bare hash is told apart by its length for the given algorithm.
import { createHash } from "node:crypto";
import { nix32Decode, nix32Encode, nix32EncodedLength } from "./base32.ts";
import { base64EncodedLength, decodeBase64Strict } from "./base64.ts";

export type HashAlgo = "md5" | "sha1" | "sha256" | "sha512";

export const HASH_SIZES: Readonly<Record<HashAlgo, number>> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

export type HashErrorKind = "bad-algorithm" | "bad-length" | "bad-characters" | "no-algorithm";

export class HashError extends Error {
  readonly kind: HashErrorKind;
  constructor(kind: HashErrorKind, message: string) {
    super(message);
    this.name = "HashError";
    this.kind = kind;
  }
}

export function isHashAlgo(s: string): s is HashAlgo {
  return Object.hasOwn(HASH_SIZES, s);
}

const HEX_RE = /^[0-9a-fA-F]*$/;

function decodeEncoded(algo: HashAlgo, s: string, original: string): Buffer {
  const size = HASH_SIZES[algo];
  if (s.length === size * 2) {
    if (!HEX_RE.test(s)) throw new HashError("bad-characters", `invalid base16 ${algo} hash '${original}'`);
    return Buffer.from(s, "hex");
  }
  if (s.length === nix32EncodedLength(size)) {
    try {
      return nix32Decode(s);
    } catch (e) {
      throw new HashError("bad-characters", `invalid nix32 ${algo} hash '${original}': ${(e as Error).message}`);
    }
  }
  if (s.length === base64EncodedLength(size)) return decodeBase64(algo, s, original);
  throw new HashError("bad-length", `hash '${original}' has wrong length ${s.length} for hash algorithm ${algo}`);
}

function decodeBase64(algo: HashAlgo, s: string, original: string): Buffer {
  const size = HASH_SIZES[algo];
  if (s.length !== base64EncodedLength(size)) {
    throw new HashError("bad-length", `hash '${original}' has wrong length ${s.length} for hash algorithm ${algo}`);
  }
  const digest = decodeBase64Strict(s);
  if (digest === undefined) throw new HashError("bad-characters", `invalid base64 ${algo} hash '${original}'`);
  if (digest.length !== size) {
    throw new HashError("bad-length", `hash '${original}' decodes to ${digest.length} bytes, ${algo} needs ${size}`);
  }
  return digest;
}

function checkAlgo(name: string, original: string): HashAlgo {
  if (!isHashAlgo(name)) throw new HashError("bad-algorithm", `unknown hash algorithm '${name}' in '${original}'`);
  return name;
}

export class NixHash {
  readonly algo: HashAlgo;
  readonly digest: Buffer;

  private constructor(algo: HashAlgo, digest: Buffer) {
    this.algo = algo;
    this.digest = digest;
  }

  static fromDigest(algo: HashAlgo, digest: Uint8Array): NixHash {
    if (!isHashAlgo(algo)) throw new HashError("bad-algorithm", `unknown hash algorithm '${String(algo)}'`);
    if (digest.length !== HASH_SIZES[algo]) {
      throw new HashError("bad-length", `a ${algo} digest has ${HASH_SIZES[algo]} bytes, got ${digest.length}`);
    }
    return new NixHash(algo, Buffer.from(digest));
  }

  /** Hashes `data` in one go (for streams, use node:crypto and `fromDigest`). */
  static of(algo: HashAlgo, data: Uint8Array | string): NixHash {
    return new NixHash(algo, createHash(algo).update(data).digest());
  }

  /**
   * Accepts `algo:<base16|nix32|base64>`, SRI `algo-<base64>`, and, when `defaultAlgo` is
   * given, a bare `<base16|nix32|base64>` digest.
   */
  static parse(s: string, defaultAlgo?: HashAlgo): NixHash {
    const colon = s.indexOf(":");
    if (colon >= 0) {
      const algo = checkAlgo(s.slice(0, colon), s);
      return new NixHash(algo, decodeEncoded(algo, s.slice(colon + 1), s));
    }
    const dash = s.indexOf("-");
    if (dash >= 0) {
      const algo = checkAlgo(s.slice(0, dash), s);
      return new NixHash(algo, decodeBase64(algo, s.slice(dash + 1), s));
    }
    if (defaultAlgo === undefined) {
      throw new HashError("no-algorithm", `hash '${s}' does not say its algorithm (expected 'sha256:…' or 'sha256-…')`);
    }
    return new NixHash(defaultAlgo, decodeEncoded(checkAlgo(defaultAlgo, s), s, s));
  }

  toBase16(): string {
    return this.digest.toString("hex");
  }

  toNix32(): string {
    return nix32Encode(this.digest);
  }

  toBase64(): string {
    return this.digest.toString("base64");
  }

  toSri(): string {
    return `${this.algo}-${this.toBase64()}`;
  }

  toTypedBase16(): string {
    return `${this.algo}:${this.toBase16()}`;
  }

  toTypedNix32(): string {
    return `${this.algo}:${this.toNix32()}`;
  }

  equals(other: NixHash): boolean {
    return this.algo === other.algo && this.digest.equals(other.digest);
  }

  toString(): string {
    return this.toTypedBase16();
  }
}
