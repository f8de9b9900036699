// Validation of URL segments before they reach the database or a path: cache names and
// store-path hashes. Invalid cache names are rejected like upstream's extractor (plain 400);
// a malformed hash in a narinfo/nar URL is a JSON 400 RequestError (decision 2).
import { isValidCacheName } from "../api/v1.ts";
import { isValidStorePathHash } from "../nix/store-path.ts";
import { notFound, rejections, requestError } from "./errors.ts";

export function cacheNameParam(params: unknown): string {
  const name = (params as { cache?: unknown }).cache;
  if (typeof name !== "string" || !isValidCacheName(name)) {
    throw rejections.invalidUrl(`Cannot parse \`${String(name)}\` as a cache name`);
  }
  return name;
}

/** `<hash>.<suffix>` → hash; wrong suffix or no dot → 404 NotFound, bad hash → 400. */
export function storePathHashParam(file: string, suffix: "narinfo" | "nar" | "ls"): string {
  const dot = file.indexOf(".");
  if (dot < 0 || file.slice(dot + 1) !== suffix) throw notFound();
  const hash = file.slice(0, dot);
  if (!isValidStorePathHash(hash)) throw requestError(`Invalid store path hash "${hash.slice(0, 64)}"`);
  return hash;
}
