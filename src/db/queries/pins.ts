// Pins (ours, issue 18): a named pin in a cache keeps a store path and its closure out of
// retention and quota GC. The closure is the one the cache holds when the pin is set (the
// objects' `references`, followed within the cache) and is recorded in attic_ts_pin_path, so GC
// needs one indexed NOT EXISTS per candidate object and no graph walk. Setting a pin again under
// the same name moves it (a deployed system replaced by the next one).
import { transaction, type Db } from "../connect.ts";
import { parseTimestamp, toInt } from "../values.ts";
import { maxBatch } from "./batch.ts";
import { batches } from "../../util/concurrency.ts";

export interface Pin {
  name: string;
  storePath: string;
  createdAt: Date;
  createdBy: string | null;
  /** paths kept by the pin (the path and its closure in the cache) */
  paths: number;
}

/**
 * The store-path hashes of `rootHash` and everything it references, transitively, among the
 * objects of the cache. Null when the cache does not hold the root.
 */
export async function closureInCache(db: Db, cacheId: number, rootHash: string): Promise<string[] | null> {
  const seen = new Set<string>();
  let frontier = [rootHash];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const batch of batches(frontier, maxBatch(db, 1) - 1)) {
      const rows = await db.kysely
        .selectFrom("object")
        .select(["store_path_hash", "references"])
        .where("cache_id", "=", cacheId)
        .where("store_path_hash", "in", batch)
        .execute();
      for (const row of rows) {
        if (seen.has(row.store_path_hash)) continue;
        seen.add(row.store_path_hash);
        for (const ref of JSON.parse(row.references) as string[]) {
          const hash = ref.slice(0, 32);
          if (!seen.has(hash)) next.push(hash);
        }
      }
    }
    if (seen.size === 0) return null;
    frontier = [...new Set(next)].filter((h) => !seen.has(h));
  }
  return [...seen];
}

/** Set (or move) the pin `name` of the cache to `storePath` keeping `hashes`. True when it was new. */
export async function setPin(
  db: Db,
  pin: { cacheId: number; name: string; storePath: string; hashes: readonly string[]; createdBy: string | null },
): Promise<boolean> {
  return transaction(db, async (tx) => {
    const removed = await tx.kysely.deleteFrom("attic_ts_pin").where("cache_id", "=", pin.cacheId).where("name", "=", pin.name).executeTakeFirst();
    const { id } = await tx.kysely
      .insertInto("attic_ts_pin")
      .values({ cache_id: pin.cacheId, name: pin.name, store_path: pin.storePath, created_at: new Date(), created_by: pin.createdBy })
      .returning("id")
      .executeTakeFirstOrThrow();
    for (const batch of batches(pin.hashes, maxBatch(tx, 2))) {
      await tx.kysely
        .insertInto("attic_ts_pin_path")
        .values(batch.map((h) => ({ pin_id: toInt(id), store_path_hash: h })))
        .execute();
    }
    return removed.numDeletedRows === 0n;
  });
}

/** False when the cache has no pin of that name. */
export async function deletePin(db: Db, cacheId: number, name: string): Promise<boolean> {
  // the pin's paths go with it (ON DELETE CASCADE; SQLite connections enable foreign keys)
  const result = await db.kysely.deleteFrom("attic_ts_pin").where("cache_id", "=", cacheId).where("name", "=", name).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function listPins(db: Db, cacheId: number): Promise<Pin[]> {
  const rows = await db.kysely
    .selectFrom("attic_ts_pin")
    .leftJoin("attic_ts_pin_path", "attic_ts_pin_path.pin_id", "attic_ts_pin.id")
    .select((eb) => [
      "attic_ts_pin.name as name",
      "attic_ts_pin.store_path as store_path",
      "attic_ts_pin.created_at as created_at",
      "attic_ts_pin.created_by as created_by",
      eb.fn.count<number>("attic_ts_pin_path.store_path_hash").as("paths"),
    ])
    .where("attic_ts_pin.cache_id", "=", cacheId)
    .groupBy(["attic_ts_pin.id", "attic_ts_pin.name", "attic_ts_pin.store_path", "attic_ts_pin.created_at", "attic_ts_pin.created_by"])
    .orderBy("attic_ts_pin.name")
    .execute();
  return rows.map((r) => ({
    name: r.name,
    storePath: r.store_path,
    createdAt: parseTimestamp(r.created_at),
    createdBy: r.created_by,
    paths: toInt(r.paths),
  }));
}
