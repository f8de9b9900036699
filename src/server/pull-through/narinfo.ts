// An upstream's narinfo (issue 27, item 2): parsed, checked against the path asked for and the
// cache's store directory, and trusted only with a valid signature by one of the keys configured
// for that upstream. Our narinfo for it is signed by the cache's key and keeps the upstream's
// signatures (the cache's first, as for pushed paths: decision 7).
import { nixFileCompression, type NixFileCompression } from "../../compression/nix-file.ts";
import type { UpstreamEntry } from "../../db/queries/upstreams.ts";
import { NixHash } from "../../nix/hash.ts";
import { NarInfoError, parseNarInfo, renderNarInfo, type NarInfo } from "../../nix/narinfo.ts";
import { fingerprintFromBaseNames, PublicKey, SigningKeypair } from "../../nix/signing.ts";
import { storeDirOf } from "../../nix/store-path.ts";
import type { Config } from "../config/types.ts";

export interface TrustedNarInfo {
  info: NarInfo;
  narHash: NixHash;
  compression: NixFileCompression;
}

/** Why an upstream narinfo was not used (logged; never sent to the client). */
export class UntrustedNarInfo extends Error {
  override name = "UntrustedNarInfo";
}

export function verifyUpstreamNarInfo(text: string, hash: string, storeDir: string, upstream: UpstreamEntry, maxNarSize: number): TrustedNarInfo {
  let info: NarInfo;
  try {
    info = parseNarInfo(text);
  } catch (err) {
    if (err instanceof NarInfoError) throw new UntrustedNarInfo(`unparsable narinfo: ${err.message}`);
    throw err;
  }
  const base = info.storePath.slice(info.storePath.lastIndexOf("/") + 1);
  if (base.slice(0, 32) !== hash) throw new UntrustedNarInfo("StorePath does not match the hash asked for");
  if (storeDirOf(info.storePath) !== storeDir) throw new UntrustedNarInfo(`StorePath is not in ${storeDir}`);
  if (!info.narHash.startsWith("sha256:")) throw new UntrustedNarInfo("NarHash is not sha256");
  if (info.narSize > maxNarSize) throw new UntrustedNarInfo("NarSize is over nix-protocol.max-nar-size");
  const compression = nixFileCompression(info.compression);
  if (!compression) throw new UntrustedNarInfo("unsupported Compression");
  const fields = [info.storePath, info.url, ...info.references, ...info.sigs, info.system ?? "", info.deriver ?? "", info.ca ?? ""];
  if (fields.some((f) => /[\r\n\0]/.test(f))) throw new UntrustedNarInfo("a field holds a CR, LF or NUL");
  const narHash = NixHash.parse(info.narHash);
  const fp = fingerprintFromBaseNames(storeDir, info.storePath, narHash, info.narSize, info.references);
  const keys = upstream.keys.map((k) => cachedKey(k));
  const signed = info.sigs.some((sig) => keys.some((k) => k.verify(fp, sig)));
  if (!signed) throw new UntrustedNarInfo("no valid signature by a trusted key");
  return { info, narHash, compression };
}

/**
 * The `Compression` we announce for a path fetched from upstream: what the `.nar` route will
 * serve once it is stored (the configured compression; brotli NARs of several chunks are served
 * decompressed, decision 3), which the first download also streams.
 */
export function announcedCompression(config: Config, narSize: number): "none" | "zstd" | "xz" | "br" {
  const name = config.compression.narinfoName;
  if (name !== "br") return name;
  const threshold = config.chunking.narSizeThreshold;
  const chunked = threshold !== 0 && narSize >= threshold && narSize > config.chunking.minSize;
  return chunked ? "none" : "br";
}

export function renderOurNarInfo(trusted: TrustedNarInfo, hash: string, cacheKeypair: string, storeDir: string, compression: string): string {
  const { info, narHash } = trusted;
  const keypair = SigningKeypair.parse(cacheKeypair);
  const fp = fingerprintFromBaseNames(storeDir, info.storePath, narHash, info.narSize, info.references);
  const ours = keypair.sign(fp);
  return renderNarInfo({
    storePath: info.storePath,
    url: `nar/${hash}.nar`,
    compression,
    narHash: narHash.toTypedBase16(),
    narSize: info.narSize,
    references: info.references,
    deriver: info.deriver,
    system: info.system,
    sigs: [ours, ...info.sigs.filter((s) => !s.startsWith(`${keypair.name}:`))],
    ca: info.ca,
  });
}

const keys = new Map<string, PublicKey>();
function cachedKey(text: string): PublicKey {
  let k = keys.get(text);
  if (!k) {
    k = PublicKey.parse(text);
    if (keys.size > 1024) keys.clear();
    keys.set(text, k);
  }
  return k;
}
