// The NAR files `nix copy --to http://HOST/CACHE` uploaded, served back at their own URLs
// (`nar/<filehash>.nar[.xz|.zst|.bz2|.br]`): the pushing machine keeps the narinfo it uploaded in
// its narinfo cache (30 days by default) and asks for that URL, never for ours. The file itself is
// not kept (push.ts decodes it into chunks); the URL is answered with a stream of the format it
// names: the stored chunks as they are when they are in that format, the NAR itself for `.nar`,
// and otherwise the NAR re-encoded at the format's cheapest level. Nix decodes what it receives
// by the narinfo's `Compression:` and checks NarHash; it does not check FileHash (checked with
// Nix 2.8 in test/e2e/nix-copy-own-urls.test.ts), so a different encoding is as good as the file.
import { availableParallelism } from "node:os";
import { finished, type Readable, type Transform } from "node:stream";
import { createNixFileEncoder } from "../../compression/nix-file-encode.ts";
import type { NixFileCompression } from "../../compression/nix-file.ts";
import type { ServedNar } from "../../db/queries/objects.ts";
import { TaskSet } from "../../util/concurrency.ts";
import { chain } from "../streams.ts";

const EXTENSIONS: Record<string, NixFileCompression> = { "": "none", ".xz": "xz", ".zst": "zstd", ".bz2": "bzip2", ".br": "br" };

/** The format a NAR file name says (`<hash>.nar.zst` → zstd), or null for one Nix cannot push to us. */
export function nixFileFormat(fileName: string): NixFileCompression | null {
  const i = fileName.indexOf(".nar");
  return i < 0 ? null : (EXTENSIONS[fileName.slice(i + 4)] ?? null);
}

/** How the bytes at such a URL are made from the stored NAR. */
export interface NixFileForm {
  /** decode the stored chunks (else they are sent as stored) */
  decompress: boolean;
  /** then encode the NAR in this format (else the NAR itself, or the chunks, are sent) */
  encode: NixFileCompression | null;
}

export function nixFileForm(format: NixFileCompression, nar: Pick<ServedNar, "compression" | "num_chunks">): NixFileForm {
  const stored = nar.compression;
  if (format === "none") return { decompress: stored !== "none", encode: null };
  // concatenated zstd frames and xz streams decode as one file; brotli streams do not
  const concatenates = format === "zstd" || format === "xz" || nar.num_chunks === 1;
  if (format === stored && concatenates) return { decompress: false, encode: null };
  return { decompress: stored !== "none", encode: format };
}

/**
 * Re-encodings running at once: one per core but one (bzip2 costs a core for over a minute per GB,
 * bench/nix-file-transcode.ts), so narinfo and other downloads keep a core. Each is bounded in
 * memory (streams with backpressure); the rest wait for a slot.
 */
const transcodes = new TaskSet(Math.max(1, availableParallelism() - 1));

/** `nar` (the NAR itself) encoded as `format`, once a transcode slot is free. */
export async function encodedNar(nar: Readable, format: NixFileCompression): Promise<Readable> {
  // no await between the check and add: the limit holds exactly
  do await transcodes.room();
  while (transcodes.size >= transcodes.limit);
  const out = chain(nar, createNixFileEncoder(format) as Transform);
  // ended, failed or destroyed (lzma-native's stream never emits "close" after its end)
  transcodes.add(new Promise<void>((resolve) => finished(out, () => resolve())));
  return out;
}
