// Encoding a whole NAR as Nix names it in a narinfo's `Compression:`, at the cheapest level of
// each format: what atticd sends at a URL `nix copy` uploaded when the stored chunks are in
// another format (docs/nix-protocol.md, "The URLs nix copy uploaded"). Nix decodes the file and
// checks NarHash; it never checks FileHash, so any valid stream of the named format will do, and
// the cheapest one costs the server least (bench/nix-file-transcode.ts): zstd and brotli at level
// 1 (over 100 MB per CPU-second), xz stored rather than compressed (xz-stored.ts: its cheapest
// preset manages 6 MB per CPU-second), bzip2 at level 1 by the `bzip2` command (Node has no
// bzip2; the command decodes pushed files too).
import { spawn } from "node:child_process";
import { Duplex, PassThrough, type Transform } from "node:stream";
import zlib from "node:zlib";
import type { NixFileCompression } from "./nix-file.ts";
import { XzStoredEncoder } from "./xz-stored.ts";

const ZLIB_CHUNK = 256 * 1024;

/** The levels used, by format (the cheapest of each: the output is sent once, never stored). */
export const NIX_FILE_ENCODE_LEVELS = { zstd: 1, br: 1, bzip2: 1 } as const;

/** A stream that encodes the NAR written into it as one `compression` file. */
export function createNixFileEncoder(compression: NixFileCompression): Transform | Duplex {
  const level = NIX_FILE_ENCODE_LEVELS;
  switch (compression) {
    case "none":
      return new PassThrough();
    case "zstd":
      return zlib.createZstdCompress({ chunkSize: ZLIB_CHUNK, params: { [zlib.constants.ZSTD_c_compressionLevel]: level.zstd } });
    case "br":
      return zlib.createBrotliCompress({ chunkSize: ZLIB_CHUNK, params: { [zlib.constants.BROTLI_PARAM_QUALITY]: level.br } });
    case "xz":
      return new XzStoredEncoder();
    case "bzip2":
      return bzip2Encoder(level.bzip2);
  }
}

/** `bzip2 -c -N` as a duplex stream; a non-zero exit is an error on it, destroying it kills the child. */
function bzip2Encoder(level: number): Duplex {
  const child = spawn("bzip2", ["-c", `-${level}`], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d.slice(0, 2000)));
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on("error", (err) => duplex.destroy(err));
  child.on("close", (code) => {
    if (code !== 0 && !duplex.destroyed) duplex.destroy(new Error(stderr.trim() || `bzip2 exited with ${code}`));
  });
  duplex.on("close", () => {
    if (child.exitCode === null) child.kill();
  });
  return duplex;
}
