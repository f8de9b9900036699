// The narinfo of an object in a cache: upstream's fields and order, the cache's signature
// first and then the client's (decision 7), and a Compression that always matches the bytes
// served at URL (decision 3: multi-chunk brotli is served decompressed as `none`).
import type { ServedNar, ServedObject } from "../db/queries/objects.ts";
import { NixHash } from "../nix/hash.ts";
import { renderNarInfo } from "../nix/narinfo.ts";
import { fingerprintFromBaseNames, SigningKeypair } from "../nix/signing.ts";
import { LruCache } from "./lru.ts";

/** What the `.nar` route serves for this NAR: the stored compression, or `none` when it must decompress. */
export function servedCompression(nar: Pick<ServedNar, "compression" | "num_chunks">): string {
  if (nar.compression === "br" && nar.num_chunks > 1) return "none";
  return nar.compression;
}

export function buildNarInfo(object: ServedObject, nar: ServedNar, cacheKeypair: string, storeDir: string): string {
  const references = JSON.parse(object.references) as string[];
  const clientSigs = JSON.parse(object.sigs) as string[];
  const narHash = NixHash.parse(nar.nar_hash);
  const keypair = cachedKeypair(cacheKeypair);
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

/**
 * Parsed signing keys by their text: parsing and importing an Ed25519 key costs more than the
 * rest of a narinfo request. Keyed by the key itself, so a rotated key is simply a new entry and
 * every replica signs with the key the database holds now.
 */
const keypairs = new LruCache<string, SigningKeypair>(1024);

function cachedKeypair(text: string): SigningKeypair {
  let keypair = keypairs.get(text);
  if (!keypair) {
    keypair = SigningKeypair.parse(text);
    keypairs.set(text, keypair);
  }
  return keypair;
}

/**
 * Rendered narinfo by everything it is made of (the rows as the database holds them now and the
 * cache's key): signing is most of the cost of a narinfo (about 60 µs), and Nix asks for the same
 * narinfo again and again. A changed row or a rotated key makes a new key, never a stale answer.
 */
const NARINFO_CACHE_BYTES = 16 * 2 ** 20;
const rendered = new LruCache<string, string>(NARINFO_CACHE_BYTES, (key, text) => 2 * (key.length + text.length) + 64);

export function cachedNarInfo(object: ServedObject, nar: ServedNar, cacheKeypair: string, storeDir: string): string {
  const key = [
    cacheKeypair, storeDir, object.store_path_hash, object.store_path, object.references, object.sigs,
    object.system ?? "\u0001", object.deriver ?? "\u0001", object.ca ?? "\u0001",
    nar.nar_hash, nar.nar_size, nar.compression, nar.num_chunks,
  ].join("\u0000");
  let text = rendered.get(key);
  if (text === undefined) {
    text = buildNarInfo(object, nar, cacheKeypair, storeDir);
    rendered.set(key, text);
  }
  return text;
}
