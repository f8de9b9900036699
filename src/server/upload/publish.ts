// The last step of every upload, in the caller's transaction: the object row that makes the path
// visible in its cache, and the push's figures for the dashboard (stored, new and deduplicated bytes).
import type { Db } from "../../db/connect.ts";
import { upsertObject } from "../../db/queries/objects.ts";
import { recordPush, type PushFigures } from "../../db/queries/stats.ts";
import type { CacheRow } from "../../db/schema.ts";
import type { UploadInfo } from "./info.ts";

export type UploadFigures = Pick<PushFigures, "storedBytes" | "newChunkBytes" | "newFileBytes">;

export async function publish(tx: Db, info: UploadInfo, cache: CacheRow, narId: number, sub: string | null, figures: UploadFigures): Promise<void> {
  await recordPush(tx, { cacheId: cache.id, storePathHash: info.store_path_hash, narId, narSize: info.nar_size, ...figures });
  await upsertObject(tx, objectRow(info, cache, narId, sub));
}

function objectRow(info: UploadInfo, cache: CacheRow, narId: number, sub: string | null) {
  return {
    cache_id: cache.id,
    nar_id: narId,
    store_path_hash: info.store_path_hash,
    store_path: info.store_path,
    references: JSON.stringify(info.references),
    deriver: info.deriver ?? null,
    sigs: JSON.stringify(info.sigs),
    ca: info.ca ?? null,
    created_by: sub,
  };
}
