// A whole NAR validated in one call, for tests and benches: the production parser over every piece,
// with the SHA-256 and size an upload computes beside it.
import { createHash } from "node:crypto";
import { NixHash } from "../../src/nix/hash.ts";
import { NarParser, type NarEvent } from "../../src/nix/nar/parser.ts";

/** Validates a whole NAR from `source`; resolves to its hash and size or rejects with a NarError. */
export async function validateNar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: { onEvent?: (event: NarEvent) => void } = {},
): Promise<{ narHash: NixHash; narSize: number }> {
  const parser = new NarParser(options.onEvent);
  const hash = createHash("sha256");
  let size = 0;
  for await (const piece of source) {
    const chunk = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    parser.update(chunk);
    hash.update(chunk);
    size += chunk.length;
  }
  parser.end();
  return { narHash: NixHash.fromDigest("sha256", hash.digest()), narSize: size };
}
