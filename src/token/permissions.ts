// What a token allows on one cache, and how a cache name finds its entry in the token:
// an exact key wins; otherwise the FIRST key (in the token's JSON order) whose wildcard pattern
// matches; otherwise nothing. Entries are never merged (upstream `get_permission_for_cache`).

export class CachePermission {
  pull = false;
  push = false;
  delete = false;
  createCache = false;
  configureCache = false;
  configureCacheRetention = false;
  destroyCache = false;

  /** Any granted flag lets the caller learn that the cache exists (403/404 instead of 401). */
  canDiscover(): boolean {
    return (
      this.pull ||
      this.push ||
      this.delete ||
      this.createCache ||
      this.configureCache ||
      this.configureCacheRetention ||
      this.destroyCache
    );
  }
}

export type PermissionName = Exclude<keyof CachePermission, "canDiscover">;

/** Every flag, in the order the token format lists them (r w d cc cr cq cd). */
export const PERMISSION_NAMES: readonly PermissionName[] = [
  "pull",
  "push",
  "delete",
  "createCache",
  "configureCache",
  "configureCacheRetention",
  "destroyCache",
];

export function copyPermission(from: CachePermission): CachePermission {
  const to = new CachePermission();
  for (const name of PERMISSION_NAMES) to[name] = from[name];
  return to;
}

/** Cache name patterns: cache names plus `*` (upstream `CacheNamePattern`). */
export const CACHE_NAME_PATTERN_RE = /^[A-Za-z0-9*][A-Za-z0-9\-_+*]{0,49}$/;

export function isValidCachePattern(pattern: string): boolean {
  return CACHE_NAME_PATTERN_RE.test(pattern);
}

/**
 * Wildcard match where `*` matches any sequence, including the empty one (wildmatch semantics;
 * `?` cannot occur in a valid pattern). Case-sensitive. Greedy-with-backtrack, linear-ish.
 */
export function matchPattern(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    if (p < pattern.length && pattern[p] === "*") {
      starP = p++;
      starN = n;
    } else if (p < pattern.length && pattern[p] === name[n]) {
      p++;
      n++;
    } else if (starP >= 0) {
      p = starP + 1;
      n = ++starN;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/** A token's grants by cache name pattern, in the token's key order (`Claims` in claims.ts has them). */
export interface CacheGrants {
  readonly caches: ReadonlyMap<string, CachePermission>;
}

/** A fresh copy: callers may add public-cache grants to the result. */
export function getPermissionForCache(claims: CacheGrants, cacheName: string): CachePermission {
  const exact = claims.caches.get(cacheName);
  if (exact) return copyPermission(exact);
  for (const [pattern, permission] of claims.caches) {
    if (matchPattern(pattern, cacheName)) return copyPermission(permission);
  }
  return new CachePermission();
}
