// Nix signing keys and narinfo signatures (Ed25519), in Nix's text formats:
//   secret key  name:base64(seed(32) ‖ public key(32))   (nix key generate-secret)
//   public key  name:base64(32)
//   signature   name:base64(64)
// node:crypto takes raw Ed25519 keys only inside DER wrappers, hence the fixed prefixes below.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { decodeBase64Strict } from "./base64.ts";
import type { NixHash } from "./hash.ts";

/** PKCS#8 DER of an Ed25519 private key, minus the 32-byte seed that follows. */
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
/** SPKI DER of an Ed25519 public key, minus the 32-byte key that follows. */
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export type SigningErrorKind = "bad-name" | "bad-base64" | "bad-length" | "key-mismatch";

export class SigningError extends Error {
  readonly kind: SigningErrorKind;
  constructor(kind: SigningErrorKind, message: string) {
    super(message);
    this.name = "SigningError";
    this.kind = kind;
  }
}

function checkName(name: string): string {
  if (name === "" || name.includes(":")) {
    throw new SigningError("bad-name", `key name ${JSON.stringify(name)} must be non-empty and contain no ':'`);
  }
  return name;
}

/** Splits `name:base64` and decodes the payload, requiring exactly `length` bytes. */
function splitNamed(s: string, length: number, what: string): { name: string; payload: Buffer } {
  const colon = s.indexOf(":");
  if (colon < 0) throw new SigningError("bad-name", `${what} has no 'name:' prefix`);
  const name = checkName(s.slice(0, colon));
  const payload = decodeBase64Strict(s.slice(colon + 1));
  if (payload === undefined) throw new SigningError("bad-base64", `${what} '${name}:…' is not valid base64`);
  if (payload.length !== length) {
    throw new SigningError("bad-length", `${what} '${name}:…' holds ${payload.length} bytes, expected ${length}`);
  }
  return { name, payload };
}

function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: "der", type: "spki" });
  return der.subarray(der.length - 32);
}

function toBuffer(message: string | Uint8Array): Buffer {
  return typeof message === "string" ? Buffer.from(message, "utf8") : Buffer.from(message);
}

export class PublicKey {
  readonly name: string;
  /** raw 32-byte Ed25519 public key */
  readonly key: Buffer;
  private readonly keyObject: KeyObject;

  private constructor(name: string, key: Buffer) {
    this.name = name;
    this.key = key;
    this.keyObject = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, key]), format: "der", type: "spki" });
  }

  static fromRaw(name: string, key: Uint8Array): PublicKey {
    if (key.length !== 32) throw new SigningError("bad-length", `an Ed25519 public key has 32 bytes, got ${key.length}`);
    return new PublicKey(checkName(name), Buffer.from(key));
  }

  static parse(s: string): PublicKey {
    const { name, payload } = splitNamed(s.trim(), 32, "public key");
    return new PublicKey(name, payload);
  }

  toString(): string {
    return `${this.name}:${this.key.toString("base64")}`;
  }

  /** True when `signature` (`name:base64`) is this key's valid signature of `message`. False on another key name or any malformed signature. */
  verify(message: string | Uint8Array, signature: string): boolean {
    let sig: { name: string; payload: Buffer };
    try {
      sig = splitNamed(signature, 64, "signature");
    } catch {
      return false;
    }
    if (sig.name !== this.name) return false;
    return verify(null, toBuffer(message), this.keyObject, sig.payload);
  }
}

export class SigningKeypair {
  readonly name: string;
  /** 32-byte Ed25519 seed */
  private readonly seed: Buffer;
  private readonly privateKey: KeyObject;
  private readonly pub: PublicKey;

  private constructor(name: string, seed: Buffer) {
    this.name = name;
    this.seed = seed;
    this.privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
    this.pub = PublicKey.fromRaw(name, rawPublicKey(createPublicKey(this.privateKey)));
  }

  static generate(name: string): SigningKeypair {
    checkName(name);
    const { privateKey } = generateKeyPairSync("ed25519");
    const der = privateKey.export({ format: "der", type: "pkcs8" });
    return new SigningKeypair(name, Buffer.from(der.subarray(der.length - 32)));
  }

  /** Parses `name:base64(seed ‖ public key)`, checking that the public half belongs to the seed. */
  static parse(s: string): SigningKeypair {
    const { name, payload } = splitNamed(s.trim(), 64, "secret key");
    const keypair = new SigningKeypair(name, Buffer.from(payload.subarray(0, 32)));
    if (!keypair.pub.key.equals(payload.subarray(32))) {
      throw new SigningError("key-mismatch", `secret key '${name}:…' holds a public key that does not match its seed`);
    }
    return keypair;
  }

  toString(): string {
    return `${this.name}:${Buffer.concat([this.seed, this.pub.key]).toString("base64")}`;
  }

  publicKey(): PublicKey {
    return this.pub;
  }

  /** Signs `message`, returning `name:base64(signature)`. */
  sign(message: string | Uint8Array): string {
    return `${this.name}:${sign(null, toBuffer(message), this.privateKey).toString("base64")}`;
  }

  verify(message: string | Uint8Array, signature: string): boolean {
    return this.pub.verify(message, signature);
  }
}

/**
 * The string Nix signs for a store path: `1;<path>;sha256:<nix32>;<narSize>;<refs>` where refs
 * are full store paths joined by commas. Nix verifies against its sorted set of references, so
 * they are sorted and deduplicated here (upstream Attic keeps upload order, which is the same
 * for anything Nix itself listed).
 */
export function fingerprint(storePath: string, narHash: NixHash, narSize: number, references: readonly string[]): string {
  if (narHash.algo !== "sha256") throw new Error(`fingerprint needs a sha256 NAR hash, got ${narHash.algo}`);
  const refs = [...new Set(references)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `1;${storePath};${narHash.toTypedNix32()};${narSize};${refs.join(",")}`;
}

/** `fingerprint` with references given as base names, as narinfo files list them. */
export function fingerprintFromBaseNames(
  storeDir: string,
  storePath: string,
  narHash: NixHash,
  narSize: number,
  referenceBaseNames: readonly string[],
): string {
  return fingerprint(storePath, narHash, narSize, referenceBaseNames.map((r) => `${storeDir}/${r}`));
}
