// Size quotas (ours, see docs/gc.md). The logical size of a cache is the sum of the NAR sizes of
// its objects, whatever is shared with other caches; the global quota bounds the sum over all
// caches. Over quota, the least recently used objects (last download, else creation) go first.
import type { Db } from "../db/connect.ts";
import { cacheLogicalSize, deleteObjects, leastRecentlyUsedObjects, listQuotaCaches, totalLogicalSize } from "../db/queries/gc.ts";

/** Objects fetched per eviction step. */
const PAGE = 1000;

/** Evict until every cache with a quota, then all caches together, fit. Returns the objects removed. */
export async function enforceQuotas(db: Db, globalMax: number | null, signal: AbortSignal): Promise<number> {
  let evicted = 0;
  for (const cache of await listQuotaCaches(db)) {
    evicted += await evictUntil(db, cache.id, await cacheLogicalSize(db, cache.id), cache.maxSize, signal);
  }
  if (globalMax !== null) evicted += await evictUntil(db, null, await totalLogicalSize(db), globalMax, signal);
  return evicted;
}

async function evictUntil(db: Db, cacheId: number | null, size: number, max: number, signal: AbortSignal): Promise<number> {
  let evicted = 0;
  while (size > max) {
    signal.throwIfAborted();
    const candidates = await leastRecentlyUsedObjects(db, cacheId, PAGE);
    if (candidates.length === 0) break;
    const victims: number[] = [];
    for (const object of candidates) {
      if (size <= max) break;
      victims.push(object.id);
      size -= object.nar_size;
    }
    evicted += await deleteObjects(db, victims);
  }
  return evicted;
}
