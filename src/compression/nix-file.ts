// Decoding a whole NAR file as Nix compresses it for `nix copy --to http://…?compression=…`:
// one stream of its `Compression:` name. Nix writes zstd as one frame; Node's decoder stops after
// the first frame without an error (see index.ts), so a multi-frame file from another tool decodes
// short and the upload's NarHash/NarSize check refuses it. bzip2 has no decoder in Node: the
// `bzip2` command does it.
import { spawn } from "node:child_process";
import { once } from "node:events";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import lzma from "lzma-native";
import type { Transform } from "node:stream";

/** `Compression:` names of a Nix narinfo we can decode ("" is bzip2, as Nix reads it). */
export const NIX_FILE_COMPRESSIONS = ["none", "xz", "zstd", "br", "bzip2"] as const;
export type NixFileCompression = (typeof NIX_FILE_COMPRESSIONS)[number];

export class NixFileDecodeError extends Error {
  constructor(compression: string, cause: unknown) {
    super(`the ${compression} NAR file does not decode: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = "NixFileDecodeError";
  }
}

export function nixFileCompression(name: string | undefined): NixFileCompression | null {
  const n = name === undefined || name === "" ? "bzip2" : name;
  return (NIX_FILE_COMPRESSIONS as readonly string[]).includes(n) ? (n as NixFileCompression) : null;
}

/** The decoded bytes of `file`; a corrupt or truncated file rejects with NixFileDecodeError. */
export async function* decodeNixFile(compression: NixFileCompression, file: Readable): AsyncGenerator<Buffer> {
  try {
    switch (compression) {
      case "none":
        yield* file;
        return;
      case "bzip2":
        yield* bunzip2(file);
        return;
      default:
        yield* through(file, decoder(compression));
    }
  } catch (err) {
    file.destroy();
    throw err instanceof NixFileDecodeError ? err : new NixFileDecodeError(compression, err);
  }
}

function decoder(compression: "xz" | "zstd" | "br"): Transform {
  switch (compression) {
    case "xz":
      return lzma.createDecompressor({ threads: 1 }) as Transform;
    case "zstd":
      return zlib.createZstdDecompress({ chunkSize: 256 * 1024 });
    case "br":
      return zlib.createBrotliDecompress({ chunkSize: 256 * 1024 });
  }
}

async function* through(source: Readable, transform: Transform): AsyncGenerator<Buffer> {
  const done = pipeline(source, transform);
  done.catch(() => {}); // surfaced by the iteration below, or awaited at the end
  for await (const piece of transform) yield piece as Buffer;
  await done;
}

async function* bunzip2(source: Readable): AsyncGenerator<Buffer> {
  const child = spawn("bzip2", ["-dc"], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d.slice(0, 2000)));
  const exited = once(child, "close");
  exited.catch(() => {});
  const fed = pipeline(source, child.stdin);
  fed.catch(() => {});
  try {
    for await (const piece of child.stdout) yield piece as Buffer;
    const [code] = (await exited) as [number | null];
    if (code !== 0) throw new Error(stderr.trim() || `bzip2 exited with ${code}`);
    await fed;
  } finally {
    if (child.exitCode === null) child.kill();
  }
}
