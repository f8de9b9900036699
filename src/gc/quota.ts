// Size quotas (ours, see docs/gc.md). The logical size of a cache is the sum of the NAR sizes of
// its objects, whatever is shared with other caches, plus the uncompressed sizes of its build
// logs; the global quota bounds the sum over all caches. Over quota, the least recently used
// objects (last download, else creation) and the oldest build logs go first, in one time order.
import type { Db } from "../db/connect.ts";
import {
  cacheLogicalSize,
  deleteBuildLogs,
  deleteObjects,
  leastRecentlyUsedObjects,
  listQuotaCaches,
  oldestBuildLogs,
  totalLogicalSize,
} from "../db/queries/gc.ts";

/** Objects (and build logs) fetched per eviction step. */
const PAGE = 1000;

export interface QuotaEvictions {
  objects: number;
  buildLogs: number;
}

/** Evict until every cache with a quota, then all caches together, fit. */
export async function enforceQuotas(db: Db, globalMax: number | null, signal: AbortSignal): Promise<QuotaEvictions> {
  const evicted: QuotaEvictions = { objects: 0, buildLogs: 0 };
  const add = (e: QuotaEvictions) => {
    evicted.objects += e.objects;
    evicted.buildLogs += e.buildLogs;
  };
  for (const cache of await listQuotaCaches(db)) {
    add(await evictUntil(db, cache.id, await cacheLogicalSize(db, cache.id), cache.maxSize, signal));
  }
  if (globalMax !== null) add(await evictUntil(db, null, await totalLogicalSize(db), globalMax, signal));
  return evicted;
}

async function evictUntil(db: Db, cacheId: number | null, size: number, max: number, signal: AbortSignal): Promise<QuotaEvictions> {
  const evicted: QuotaEvictions = { objects: 0, buildLogs: 0 };
  while (size > max) {
    signal.throwIfAborted();
    const objects = await leastRecentlyUsedObjects(db, cacheId, PAGE);
    const logs = await oldestBuildLogs(db, cacheId, PAGE);
    if (objects.length === 0 && logs.length === 0) break;
    const objectVictims: number[] = [];
    const logVictims: number[] = [];
    let o = 0;
    let l = 0;
    // merge the two pages by time; stop at the end of either page, the next step fetches again
    while (size > max && (o < objects.length || l < logs.length)) {
      const object = objects[o];
      const log = logs[l];
      if (object && (!log || object.last_used.getTime() <= log.created_at.getTime())) {
        objectVictims.push(object.id);
        size -= object.nar_size;
        o++;
        if (o === objects.length && l < logs.length && objects.length === PAGE) break;
      } else if (log) {
        logVictims.push(log.id);
        size -= log.size;
        l++;
        if (l === logs.length && o < objects.length && logs.length === PAGE) break;
      }
    }
    evicted.objects += await deleteObjects(db, objectVictims);
    evicted.buildLogs += await deleteBuildLogs(db, logVictims);
  }
  return evicted;
}
