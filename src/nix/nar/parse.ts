// Stream-facing NAR validation: a pass-through Transform for pipelines that checks the structure
// and computes the NAR's SHA-256 and size (NarError, the failure, comes from parser.ts).
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { Transform } from "node:stream";
import type { TransformCallback } from "node:stream";
import { NixHash } from "../hash.ts";
import { NarParser } from "./parser.ts";
import type { NarEvent } from "./parser.ts";

export interface NarResult {
  narHash: NixHash;
  narSize: number;
}

export interface NarValidatorOptions {
  /** Called synchronously for every node and contents slice, in NAR order. */
  onEvent?: (e: NarEvent) => void;
}

/**
 * Passes bytes through unchanged while validating them; fails the stream with a NarError on the
 * first problem (before passing on the chunk that holds it). `result()` is available once the
 * writable side has finished ('finish').
 */
export class NarValidator extends Transform {
  private readonly parser: NarParser;
  private readonly hash: Hash = createHash("sha256");
  private size = 0;
  private outcome: NarResult | undefined;

  constructor(options: NarValidatorOptions = {}) {
    super();
    this.parser = new NarParser(options.onEvent);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.parser.update(chunk);
    } catch (e) {
      callback(e as Error);
      return;
    }
    this.hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.parser.end();
    } catch (e) {
      callback(e as Error);
      return;
    }
    this.outcome = { narHash: NixHash.fromDigest("sha256", this.hash.digest()), narSize: this.size };
    callback();
  }

  /** The NAR's hash and size; throws until the whole NAR has passed and proved valid. */
  result(): NarResult {
    if (this.outcome === undefined) throw new Error("NarValidator.result() called before the NAR was complete");
    return this.outcome;
  }
}
