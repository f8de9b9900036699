// A reference to a cache as users write it: `cachename` (default server) or
// `servername:cachename`. Server names follow the cache-name rules (upstream client/src/cache.rs).
import { isValidCacheName } from "../api/v1.ts";
import { UserError } from "./errors.ts";

export interface CacheRef {
  /** null = the default server */
  server: string | null;
  cache: string;
}

export function parseCacheRef(s: string): CacheRef {
  if (isValidCacheName(s)) return { server: null, cache: s };
  const colon = s.indexOf(":");
  if (colon !== -1) {
    const server = s.slice(0, colon);
    const cache = s.slice(colon + 1);
    if (isValidCacheName(server) && isValidCacheName(cache)) return { server, cache };
  }
  throw new UserError(`Invalid cache reference "${s}": expected "cache" or "server:cache" (letters, digits, "-", "_", "+", at most 50 characters)`);
}

export function parseServerName(s: string): string {
  if (!isValidCacheName(s)) {
    throw new UserError(`Invalid server name "${s}": use letters, digits, "-", "_" and "+" (at most 50 characters, starting with a letter or digit)`);
  }
  return s;
}
