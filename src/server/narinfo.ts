// The narinfo of an object in a cache: upstream's fields and order, the cache's signature
// first and then the client's (decision 7), and a Compression that always matches the bytes
// served at URL (decision 3: multi-chunk brotli is served decompressed as `none`).
import type { NarRow, ObjectRow } from "../db/schema.ts";
import { NixHash } from "../nix/hash.ts";
import { renderNarInfo } from "../nix/narinfo.ts";
import { fingerprintFromBaseNames, SigningKeypair } from "../nix/signing.ts";

/** What the `.nar` route serves for this NAR: the stored compression, or `none` when it must decompress. */
export function servedCompression(nar: Pick<NarRow, "compression" | "num_chunks">): string {
  if (nar.compression === "br" && nar.num_chunks > 1) return "none";
  return nar.compression;
}

export function buildNarInfo(object: ObjectRow, nar: NarRow, cacheKeypair: string, storeDir: string): string {
  const references = JSON.parse(object.references) as string[];
  const clientSigs = JSON.parse(object.sigs) as string[];
  const narHash = NixHash.parse(nar.nar_hash);
  const keypair = SigningKeypair.parse(cacheKeypair);
  const fp = fingerprintFromBaseNames(storeDirOf(object.store_path, storeDir), object.store_path, narHash, nar.nar_size, references);
  const cacheSig = keypair.sign(fp);
  const sigs = [cacheSig, ...clientSigs.filter((s) => s !== cacheSig && !s.startsWith(`${keypair.name}:`))];
  return renderNarInfo({
    storePath: object.store_path,
    url: `nar/${object.store_path_hash}.nar`,
    compression: servedCompression(nar),
    narHash: narHash.toTypedBase16(),
    narSize: nar.nar_size,
    references,
    deriver: object.deriver ?? undefined,
    system: object.system ?? undefined,
    sigs,
    ca: object.ca ?? undefined,
  });
}

/** The directory of the stored path (upstream: dirname of StorePath), falling back to the cache's. */
function storeDirOf(storePath: string, fallback: string): string {
  const i = storePath.lastIndexOf("/");
  return i > 0 ? storePath.slice(0, i) : fallback;
}
