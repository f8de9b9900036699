import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { NixHash } from "../../nix/hash.ts";
import { sha256OfStream } from "../../workers/sha256.ts";

/** Pass-through that counts bytes (and optionally hashes them: the compressed file's hash). */
export class ByteCounter extends Transform {
  bytes = 0;
  private readonly hash: Hash | null;
  private digest: string | null = null;

  constructor(withHash = false) {
    super();
    this.hash = withHash ? createHash("sha256") : null;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    cb(null, chunk);
  }

  typedHash(): string {
    if (!this.hash) throw new Error("ByteCounter created without hashing");
    this.digest ??= this.hash.digest("hex");
    return `sha256:${this.digest}`;
  }
}

/** SHA-256 and length of a whole stream (proof of possession), hashed on the worker pool. */
export async function hashStream(source: AsyncIterable<Buffer>): Promise<{ hash: NixHash; size: number }> {
  const { digest, size } = await sha256OfStream(source);
  return { hash: NixHash.fromDigest("sha256", digest), size };
}
