// The pack figures of /metrics and the dashboard's server page (docs/compaction.md), read from the
// database at most once a minute per process: they come from an aggregate over every packed chunk,
// which a scrape every few seconds should not repeat on a large store.
import type { Db } from "../db/connect.ts";
import { packSpace, type PackSpace } from "../db/queries/pack-gc.ts";

const TTL_MS = 60_000;

export function cachedPackSpace(db: Db, threshold: number, ttlMs = TTL_MS): () => Promise<PackSpace> {
  let last: { at: number; value: Promise<PackSpace> } | null = null;
  return () => {
    const now = Date.now();
    if (last && now - last.at < ttlMs) return last.value;
    const value = packSpace(db, threshold);
    last = { at: now, value };
    // a failure is not cached: the next scrape asks again
    value.catch(() => {
      if (last?.value === value) last = null;
    });
    return value;
  };
}
