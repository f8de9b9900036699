// Pull-through (issue 27): a cache's upstreams, the verified upstream narinfo of a path until its
// NAR is fetched, and the per-cache figures the dashboard shows.
import type { Db } from "../connect.ts";
import { transaction } from "../connect.ts";
import { parseTimestamp, toInt } from "../values.ts";

export interface UpstreamEntry {
  /** base URL without a trailing slash */
  url: string;
  /** trusted public keys, `name:base64` */
  keys: string[];
}

export async function listUpstreams(db: Db, cacheId: number): Promise<UpstreamEntry[]> {
  const rows = await db.kysely.selectFrom("attic_ts_upstream").select(["url", "keys"]).where("cache_id", "=", cacheId).orderBy("position").execute();
  return rows.map((r) => ({ url: r.url, keys: JSON.parse(r.keys) as string[] }));
}

/** The upstreams of several caches at once (cache listing, `attic cache info`). */
export async function upstreamsOf(db: Db, cacheIds: readonly number[]): Promise<Map<number, UpstreamEntry[]>> {
  const out = new Map<number, UpstreamEntry[]>();
  if (cacheIds.length === 0) return out;
  const rows = await db.kysely
    .selectFrom("attic_ts_upstream")
    .select(["cache_id", "url", "keys"])
    .where("cache_id", "in", [...cacheIds])
    .orderBy("cache_id")
    .orderBy("position")
    .execute();
  for (const r of rows) {
    const id = toInt(r.cache_id);
    const list = out.get(id) ?? [];
    list.push({ url: r.url, keys: JSON.parse(r.keys) as string[] });
    out.set(id, list);
  }
  return out;
}

/** Replace the cache's upstreams with `list`, in order. */
export async function setUpstreams(db: Db, cacheId: number, list: readonly UpstreamEntry[]): Promise<void> {
  await transaction(db, async (tx) => {
    await tx.kysely.deleteFrom("attic_ts_upstream").where("cache_id", "=", cacheId).execute();
    if (list.length === 0) return;
    await tx.kysely
      .insertInto("attic_ts_upstream")
      .values(list.map((u, position) => ({ cache_id: cacheId, position, url: u.url, keys: JSON.stringify(u.keys) })))
      .execute();
  });
}

export interface UpstreamNarinfoRow {
  upstreamUrl: string;
  narinfo: string;
  createdAt: Date;
}

export async function getUpstreamNarinfo(db: Db, cacheId: number, storePathHash: string): Promise<UpstreamNarinfoRow | null> {
  const r = await db.kysely
    .selectFrom("attic_ts_upstream_narinfo")
    .select(["upstream_url", "narinfo", "created_at"])
    .where("cache_id", "=", cacheId)
    .where("store_path_hash", "=", storePathHash)
    .executeTakeFirst();
  return r ? { upstreamUrl: r.upstream_url, narinfo: r.narinfo, createdAt: parseTimestamp(r.created_at) } : null;
}

export async function putUpstreamNarinfo(db: Db, cacheId: number, storePathHash: string, upstreamUrl: string, narinfo: string): Promise<void> {
  const now = new Date();
  await db.kysely
    .insertInto("attic_ts_upstream_narinfo")
    .values({ cache_id: cacheId, store_path_hash: storePathHash, upstream_url: upstreamUrl, narinfo, created_at: now })
    .onConflict((oc) =>
      oc.columns(["cache_id", "store_path_hash"]).doUpdateSet({ upstream_url: upstreamUrl, narinfo, created_at: now }),
    )
    .execute();
}

export async function deleteUpstreamNarinfo(db: Db, cacheId: number, storePathHash: string): Promise<void> {
  await db.kysely.deleteFrom("attic_ts_upstream_narinfo").where("cache_id", "=", cacheId).where("store_path_hash", "=", storePathHash).execute();
}

/** Upstream narinfos whose NAR was never asked for, older than `before` (GC). */
export async function deleteStaleUpstreamNarinfos(db: Db, before: Date): Promise<number> {
  const r = await db.kysely.deleteFrom("attic_ts_upstream_narinfo").where("created_at", "<", before).executeTakeFirst();
  return Number(r.numDeletedRows);
}

export type PullCounter = "fetched_paths" | "fetched_nar_bytes" | "upstream_bytes" | "upstream_found" | "upstream_missed";

export async function bumpPullStats(db: Db, cacheId: number, add: Partial<Record<PullCounter, number>>): Promise<void> {
  const values = { fetched_paths: 0, fetched_nar_bytes: 0, upstream_bytes: 0, upstream_found: 0, upstream_missed: 0, ...add };
  await db.kysely
    .insertInto("attic_ts_pull_stats")
    .values({ cache_id: cacheId, ...values })
    .onConflict((oc) =>
      oc.column("cache_id").doUpdateSet((eb) => ({
        fetched_paths: eb("attic_ts_pull_stats.fetched_paths", "+", eb.ref("excluded.fetched_paths")),
        fetched_nar_bytes: eb("attic_ts_pull_stats.fetched_nar_bytes", "+", eb.ref("excluded.fetched_nar_bytes")),
        upstream_bytes: eb("attic_ts_pull_stats.upstream_bytes", "+", eb.ref("excluded.upstream_bytes")),
        upstream_found: eb("attic_ts_pull_stats.upstream_found", "+", eb.ref("excluded.upstream_found")),
        upstream_missed: eb("attic_ts_pull_stats.upstream_missed", "+", eb.ref("excluded.upstream_missed")),
      })),
    )
    .execute();
}

export type PullStats = Record<PullCounter, number>;

export async function getPullStats(db: Db, cacheId: number): Promise<PullStats | null> {
  const r = await db.kysely.selectFrom("attic_ts_pull_stats").selectAll().where("cache_id", "=", cacheId).executeTakeFirst();
  if (!r) return null;
  return {
    fetched_paths: toInt(r.fetched_paths),
    fetched_nar_bytes: toInt(r.fetched_nar_bytes),
    upstream_bytes: toInt(r.upstream_bytes),
    upstream_found: toInt(r.upstream_found),
    upstream_missed: toInt(r.upstream_missed),
  };
}
