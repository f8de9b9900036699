// The upload info of PUT /_api/v1/upload-path: from the X-Attic-Nar-Info header, or from a JSON
// preamble of X-Attic-Nar-Info-Preamble-Size bytes at the start of the body (preamble wins).
// Parsed and validated before auth, as upstream; the messages are upstream's.
import type { IncomingHttpHeaders } from "node:http";
import { CACHE_NAME_RE, type UploadPathNarInfo } from "../../api/v1.ts";
import { NixHash } from "../../nix/hash.ts";
import type { NarInfo } from "../../nix/narinfo.ts";
import { isValidStorePathHash } from "../../nix/store-path.ts";
import { requestError } from "../errors.ts";
import type { BodyReader } from "./body.ts";

export interface UploadInfo extends UploadPathNarInfo {
  narHash: NixHash;
}

export async function readUploadInfo(headers: IncomingHttpHeaders, body: BodyReader, maxNarInfoSize: number): Promise<UploadInfo> {
  const preamble = headers["x-attic-nar-info-preamble-size"];
  let json: string;
  if (typeof preamble === "string") {
    if (!/^\d+$/.test(preamble.trim())) throw requestError("X-Attic-Nar-Info-Preamble-Size must be a valid unsigned integer");
    const size = Number(preamble.trim());
    if (!Number.isSafeInteger(size) || size > maxNarInfoSize) throw requestError("Upload info is too large");
    const bytes = await body.readExact(size);
    if (!bytes) throw requestError("Upload info doesn't match specified size");
    json = bytes.toString("utf8");
  } else {
    const header = headers["x-attic-nar-info"];
    if (typeof header !== "string") throw requestError("X-Attic-Nar-Info must be set");
    if (Buffer.byteLength(header) > maxNarInfoSize) throw requestError("Upload info is too large");
    json = header;
  }
  return parseUploadInfo(json);
}

export function parseUploadInfo(json: string): UploadInfo {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw requestError(`Failed to parse upload info: ${(err as Error).message}`);
  }
  const o = v as Record<string, unknown>;
  const bad = (what: string) => requestError(`Failed to parse upload info: ${what}`);
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw bad("expected a JSON object");
  if (typeof o.cache !== "string" || !CACHE_NAME_RE.test(o.cache)) throw bad("invalid `cache`");
  if (typeof o.store_path_hash !== "string" || !isValidStorePathHash(o.store_path_hash)) throw bad("invalid `store_path_hash`");
  if (typeof o.store_path !== "string" || o.store_path.length === 0 || o.store_path.length > 4096) throw bad("invalid `store_path`");
  if (!Array.isArray(o.references) || !o.references.every((r) => typeof r === "string")) throw bad("invalid `references`");
  if (!Array.isArray(o.sigs) || !o.sigs.every((r) => typeof r === "string")) throw bad("invalid `sigs`");
  for (const k of ["system", "deriver", "ca"] as const) {
    if (o[k] !== undefined && o[k] !== null && typeof o[k] !== "string") throw bad(`invalid \`${k}\``);
  }
  // these fields end up as narinfo lines: a line break would let a pusher add lines of its own,
  // and PostgreSQL refuses a NUL in text (a 500) (upstream does not check; no real client sends one)
  const lineBreak = /[\r\n\0]/;
  if (lineBreak.test(o.store_path)) throw bad("invalid `store_path`");
  for (const k of ["references", "sigs"] as const) if ((o[k] as string[]).some((r) => lineBreak.test(r))) throw bad(`invalid \`${k}\``);
  for (const k of ["system", "deriver", "ca"] as const) if (typeof o[k] === "string" && lineBreak.test(o[k])) throw bad(`invalid \`${k}\``);
  if (typeof o.nar_size !== "number" || !Number.isSafeInteger(o.nar_size) || o.nar_size < 0) throw bad("invalid `nar_size`");
  if (typeof o.nar_hash !== "string") throw bad("invalid `nar_hash`");
  let narHash: NixHash;
  try {
    if (!o.nar_hash.startsWith("sha256:")) throw new Error("must be sha256:<hash>");
    narHash = NixHash.parse(o.nar_hash);
  } catch (err) {
    throw bad(`invalid \`nar_hash\`: ${(err as Error).message}`);
  }
  return {
    cache: o.cache,
    store_path_hash: o.store_path_hash,
    store_path: o.store_path,
    references: o.references as string[],
    system: (o.system as string | null | undefined) ?? null,
    deriver: (o.deriver as string | null | undefined) ?? null,
    sigs: o.sigs as string[],
    ca: (o.ca as string | null | undefined) ?? null,
    nar_hash: o.nar_hash,
    nar_size: o.nar_size,
    narHash,
  };
}

/** What a push says of a path when it arrives as a narinfo (`nix copy`, an upstream cache) rather than as upload info. */
export function uploadInfoFromNarInfo(cacheName: string, storePathHash: string, narinfo: NarInfo, narHash: NixHash = NixHash.parse(narinfo.narHash)): UploadInfo {
  return {
    cache: cacheName,
    store_path_hash: storePathHash,
    store_path: narinfo.storePath,
    references: narinfo.references,
    system: narinfo.system ?? null,
    deriver: narinfo.deriver ?? null,
    sigs: narinfo.sigs,
    ca: narinfo.ca ?? null,
    nar_hash: narHash.toTypedBase16(),
    nar_size: narinfo.narSize,
    narHash,
  };
}
