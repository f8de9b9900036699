// Queries on `attic_ts_upload_session` (ours): the record of an upload in parts. The parts
// themselves live in the pipeline of the process that holds the session (`owner`); this row is
// what other requests, other replicas and GC see of it.
import type { Db } from "../connect.ts";
import type { UploadSessionState } from "../schema.ts";
import { parseTimestamp } from "../values.ts";

export interface UploadSessionRow {
  id: string;
  cache_id: number;
  created_by: string | null;
  upload_info: string;
  chunk_size: number;
  num_parts: number;
  state: UploadSessionState;
  message: string | null;
  result: string | null;
  owner: string;
  created_at: Date;
  updated_at: Date;
  alive_at: Date;
}

export interface NewUploadSession {
  id: string;
  cache_id: number;
  created_by: string | null;
  upload_info: string;
  chunk_size: number;
  num_parts: number;
  owner: string;
}

export async function insertUploadSession(db: Db, row: NewUploadSession): Promise<void> {
  const now = new Date();
  await db.kysely
    .insertInto("attic_ts_upload_session")
    .values({ ...row, state: "uploading", message: null, result: null, created_at: now, updated_at: now, alive_at: now })
    .execute();
}

export async function getUploadSession(db: Db, id: string): Promise<UploadSessionRow | null> {
  const row = await db.kysely.selectFrom("attic_ts_upload_session").selectAll().where("id", "=", id).executeTakeFirst();
  if (!row) return null;
  return {
    ...row,
    cache_id: Number(row.cache_id),
    chunk_size: Number(row.chunk_size),
    num_parts: Number(row.num_parts),
    created_at: parseTimestamp(row.created_at),
    updated_at: parseTimestamp(row.updated_at),
    alive_at: parseTimestamp(row.alive_at),
  };
}

/** The client did something with the session (a part, a finalize): it is not abandoned. */
export async function touchUploadSession(db: Db, id: string): Promise<void> {
  await db.kysely.updateTable("attic_ts_upload_session").set({ updated_at: new Date() }).where("id", "=", id).execute();
}

/** The owner's heartbeat for all the sessions it holds. */
export async function markOwnerAlive(db: Db, owner: string): Promise<void> {
  await db.kysely.updateTable("attic_ts_upload_session").set({ alive_at: new Date() }).where("owner", "=", owner).execute();
}

export async function setUploadSessionState(
  db: Db,
  id: string,
  state: UploadSessionState,
  extra: { message?: string | null; result?: string | null } = {},
): Promise<void> {
  await db.kysely
    .updateTable("attic_ts_upload_session")
    .set({ state, updated_at: new Date(), ...extra })
    .where("id", "=", id)
    .execute();
}

/** Sessions the owner still marks as running become failed (a shutdown). */
export async function failOwnedUploadSessions(db: Db, owner: string, message: string): Promise<void> {
  await db.kysely
    .updateTable("attic_ts_upload_session")
    .set({ state: "failed", message, updated_at: new Date() })
    .where("owner", "=", owner)
    .where("state", "in", ["uploading", "pending"])
    .execute();
}

export async function deleteUploadSession(db: Db, id: string): Promise<void> {
  await db.kysely.deleteFrom("attic_ts_upload_session").where("id", "=", id).execute();
}

/**
 * GC: sessions the client left alone since `idleBefore`, or whose owner stopped proving it is
 * alive since then (it crashed), finished ones included (their answer has had its time).
 */
export async function reapUploadSessions(db: Db, idleBefore: Date): Promise<number> {
  const result = await db.kysely
    .deleteFrom("attic_ts_upload_session")
    .where((w) => w.or([w("updated_at", "<", idleBefore), w("alive_at", "<", idleBefore)]))
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
