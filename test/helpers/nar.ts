// NAR fixtures for server tests, written here independently of src/nix (a NAR of one regular
// file is a handful of length-prefixed strings), plus an upload helper speaking the wire format.
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import type { TestServer } from "./server.ts";

function str(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s) : s;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  const pad = Buffer.alloc((8 - (b.length % 8)) % 8);
  return Buffer.concat([len, b, pad]);
}

/** NAR of a single regular file with these contents. */
export function fileNar(contents: Buffer, executable = false): Buffer {
  return Buffer.concat([
    str("nix-archive-1"), str("("), str("type"), str("regular"),
    ...(executable ? [str("executable"), str("")] : []),
    str("contents"), str(contents), str(")"),
  ]);
}

/**
 * A NAR of one regular file of `fileSize` bytes of AES-CTR keystream (incompressible), generated
 * on the fly in 1 MiB pieces: NARs of gigabytes without holding them.
 */
export async function* syntheticNar(fileSize: number): AsyncGenerator<Buffer> {
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(fileSize));
  yield Buffer.concat([str("nix-archive-1"), str("("), str("type"), str("regular"), str("contents"), size]);
  const cipher = createCipheriv("aes-128-ctr", Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const piece = 1 << 20;
  const zeros = Buffer.alloc(piece);
  for (let left = fileSize; left > 0; left -= piece) yield cipher.update(left >= piece ? zeros : zeros.subarray(0, left));
  yield Buffer.concat([Buffer.alloc((8 - (fileSize % 8)) % 8), str(")")]);
}

/** SHA-256 (`sha256:<hex>`) and size of a streamed NAR. */
export async function hashNarStream(source: AsyncIterable<Buffer>): Promise<{ narHash: string; narSize: number }> {
  const hash = createHash("sha256");
  let narSize = 0;
  for await (const piece of source) {
    hash.update(piece);
    narSize += piece.length;
  }
  return { narHash: `sha256:${hash.digest("hex")}`, narSize };
}

/** Deterministic pseudo-random bytes (xorshift), so chunk boundaries are reproducible. */
export function seededBytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const NIX32 = "0123456789abcdfghijklmnpqrsvwxyz";
export function randomStorePathHash(): string {
  const b = randomBytes(32);
  let s = "";
  for (let i = 0; i < 32; i++) s += NIX32[b[i]! % 32];
  return s;
}

export interface NarFixture {
  nar: Buffer;
  narHash: string; // sha256:<hex>
  narSize: number;
  storePathHash: string;
  storePath: string;
}

export function narFixture(contents: Buffer, name = "fixture"): NarFixture {
  const nar = fileNar(contents);
  const storePathHash = randomStorePathHash();
  return {
    nar,
    narHash: `sha256:${createHash("sha256").update(nar).digest("hex")}`,
    narSize: nar.length,
    storePathHash,
    storePath: `/nix/store/${storePathHash}-${name}`,
  };
}

export interface UploadOptions {
  cache: string;
  token?: string;
  mode?: "header" | "preamble";
  references?: string[];
  sigs?: string[];
  /** override claimed hash/size */
  narHash?: string;
  narSize?: number;
  /** body to send instead of the NAR */
  body?: Buffer | AsyncIterable<Uint8Array>;
  extraInfo?: Record<string, unknown>;
}

/** The upload-path JSON (X-Attic-Nar-Info) of a fixture with no references or signatures. */
export function uploadInfo(fx: NarFixture, cache: string): Record<string, unknown> {
  return {
    cache,
    store_path_hash: fx.storePathHash,
    store_path: fx.storePath,
    references: [],
    system: null,
    deriver: null,
    sigs: [],
    ca: null,
    nar_hash: fx.narHash,
    nar_size: fx.narSize,
  };
}

export async function uploadNar(server: TestServer, fx: NarFixture, opts: UploadOptions): Promise<Response> {
  const info = {
    ...uploadInfo(fx, opts.cache),
    references: opts.references ?? [],
    sigs: opts.sigs ?? [],
    nar_hash: opts.narHash ?? fx.narHash,
    nar_size: opts.narSize ?? fx.narSize,
    ...opts.extraInfo,
  };
  const json = Buffer.from(JSON.stringify(info));
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const payload = opts.body ?? fx.nar;
  let body: AsyncIterable<Uint8Array>;
  if (opts.mode === "preamble") {
    headers["x-attic-nar-info-preamble-size"] = String(json.length);
    body = (async function* () {
      yield json;
      if (Buffer.isBuffer(payload)) yield payload;
      else yield* payload;
    })();
  } else {
    headers["x-attic-nar-info"] = json.toString();
    body = Buffer.isBuffer(payload) ? (async function* () { yield payload; })() : payload;
  }
  return fetch(`${server.url}/_api/v1/upload-path`, {
    method: "PUT",
    headers,
    body: streamBody(body),
    duplex: "half",
  } as RequestInit);
}

function streamBody(it: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const iter = it[Symbol.asyncIterator]();
  return new ReadableStream({
    async pull(controller) {
      const r = await iter.next();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
  });
}
