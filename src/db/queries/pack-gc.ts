// Queries of compaction (docs/compaction.md) on `attic_ts_pack` and the packed chunks. The
// compactor runs under the "gc" lease, so it is the only writer of `C` packs (being written by a
// compaction) and of retirements; uploads only append to open `P` packs and never touch a sealed
// one. Rows move to a new pack in one transaction, and a pack is retired only when no valid or
// pending chunk points at it any more (checked inside that transaction).
import { sql } from "kysely";
import { transaction, type Db } from "../connect.ts";
import { toInt, parseTimestamp } from "../values.ts";
import { maxBatch } from "./batch.ts";
import { batches } from "../../util/concurrency.ts";
import { packLeaseName } from "./packs.ts";

/** What the compactor and unpack need of a pack. `remoteFile` is upstream's RemoteFile JSON. */
export interface PackRef {
  id: number;
  remoteFile: string;
  size: number;
}

export interface PackLiveFigures extends PackRef {
  liveBytes: number;
  liveChunks: number;
  /** an upload is still committing chunks of this pack */
  hasPending: boolean;
}

export interface LiveChunk {
  id: number;
  offset: number;
  /** the frame's length: the chunk's file_size */
  length: number;
  fileHash: string | null;
}

const LIVE = ["V", "P"] as const;

function toRef(r: { id: unknown; remote_file: string; size: unknown }): PackRef {
  return { id: toInt(r.id), remoteFile: r.remote_file, size: toInt(r.size) };
}

/**
 * Every sealed pack with its live bytes and chunks (valid or pending), from one aggregate over the
 * chunks that have a pack. With `sealedBefore`, only packs sealed before it: between a pack's seal
 * and the transaction that turns its chunks valid no row names it yet (docs/packs.md), so a pack
 * can be told dead, or have all its live chunks counted, only once every chunk that may still turn
 * valid into it is: see settledBefore.
 */
export async function packFigures(db: Db, opts: { sealedBefore?: Date } = {}): Promise<PackLiveFigures[]> {
  const packs = await db.kysely
    .selectFrom("attic_ts_pack")
    .select(["id", "remote_file", "size"])
    .where("state", "=", "V")
    .$if(opts.sealedBefore !== undefined, (q) => q.where("sealed_at", "<", opts.sealedBefore!))
    .orderBy("id")
    .execute();
  const live = await db.kysely
    .selectFrom("chunk")
    .select((eb) => [
      "pack_id",
      eb.fn.coalesce(eb.fn.sum<number>("file_size"), sql<number>`0`).as("bytes"),
      eb.fn.countAll().as("n"),
      eb.fn.sum<number>(sql`CASE WHEN ${sql.ref("state")} = 'P' THEN 1 ELSE 0 END`).as("pending"),
    ])
    .where("pack_id", "is not", null)
    .where("state", "in", LIVE)
    .groupBy("pack_id")
    .execute();
  const byPack = new Map(live.map((r) => [toInt(r.pack_id), r]));
  return packs.map((p) => {
    const l = byPack.get(toInt(p.id));
    return { ...toRef(p), liveBytes: l ? toInt(l.bytes) : 0, liveChunks: l ? toInt(l.n) : 0, hasPending: l ? toInt(l.pending) > 0 : false };
  });
}

/**
 * Packs sealed before this have every chunk they will ever hold already valid (or dead): a chunk is
 * claimed (pending, created_at stamped) before it is appended to a pack, by the atticd that appends
 * and seals it, and gets its pack_id only when it turns valid. So while a pending chunk created
 * before a pack's seal exists, that pack may still gain rows. Null: no pending chunk at all.
 */
export async function settledBefore(db: Db): Promise<Date | null> {
  const row = await db.kysely
    .selectFrom("chunk")
    .select((eb) => eb.fn.min("created_at").as("oldest"))
    .where("state", "=", "P")
    .executeTakeFirst();
  return row?.oldest === null || row?.oldest === undefined ? null : parseTimestamp(row.oldest);
}

/** The valid chunks of a pack in offset order (a pack holds at most a few thousand). */
export async function liveChunksOfPack(db: Db, packId: number): Promise<LiveChunk[]> {
  const rows = await db.kysely
    .selectFrom("chunk")
    .select(["id", "pack_offset", "file_size", "file_hash"])
    .where("pack_id", "=", packId)
    .where("state", "=", "V")
    .orderBy("pack_offset")
    .execute();
  return rows.map((r) => ({ id: toInt(r.id), offset: toInt(r.pack_offset), length: toInt(r.file_size), fileHash: r.file_hash }));
}

export interface LooseChunk {
  id: number;
  /** upstream's RemoteFile JSON of its own object */
  remoteFile: string;
  length: number;
  fileHash: string | null;
}

/** Valid chunks stored one object each (no pack), by id, after `afterId`. */
export async function looseChunks(db: Db, afterId: number, limit: number): Promise<LooseChunk[]> {
  const rows = await db.kysely
    .selectFrom("chunk")
    .select(["id", "remote_file", "file_size", "file_hash"])
    .where("pack_id", "is", null)
    .where("state", "=", "V")
    .where("id", ">", afterId)
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: toInt(r.id), remoteFile: r.remote_file, length: toInt(r.file_size), fileHash: r.file_hash }));
}

/** The row of a pack the compactor is about to write (state C): a crash leaves it for the next run to reap. */
export async function insertCompactionPack(db: Db, remoteFile: string, remoteFileId: string, now = new Date()): Promise<number> {
  const row = await db.kysely
    .insertInto("attic_ts_pack")
    .values({ state: "C", remote_file: remoteFile, remote_file_id: remoteFileId, size: 0, chunks: 0, created_at: now })
    .returning("id")
    .executeTakeFirstOrThrow();
  return toInt(row.id);
}

export interface PackCommit {
  packId: number;
  /** bytes of the new pack, now durable */
  size: number;
  /** fromPack null: the chunk was stored as its own object, which is retired like a pack */
  moves: readonly { chunkId: number; fromPack: number | null; offset: number }[];
  /** old packs whose live chunks are all in new packs: retired if none is left behind */
  retire: readonly number[];
  now: Date;
}

/**
 * One transaction: the chunk rows move to the new (durable) pack where they still point at their
 * old one, the new pack turns sealed, and the old packs none of whose live chunks remain are
 * retired. Returns how many were retired.
 */
export async function commitCompactionPack(db: Db, c: PackCommit): Promise<number> {
  return transaction(
    db,
    async (tx) => {
      const byFrom = new Map<number | null, { chunkId: number; offset: number }[]>();
      for (const m of c.moves) {
        const list = byFrom.get(m.fromPack);
        if (list) list.push(m);
        else byFrom.set(m.fromPack, [m]);
      }
      for (const [fromPack, moves] of byFrom) {
        for (const batch of batches(moves, MOVE_BATCH)) {
          const moved = await moveRows(tx, c.packId, fromPack, batch);
          // an object of its own no row uses any more: retired like a pack, deleted after the grace
          if (fromPack === null && moved.length > 0) {
            await tx.kysely
              .insertInto("attic_ts_pack")
              .values(
                moved.map((r) => ({
                  state: "R" as const,
                  remote_file: r.remote_file,
                  remote_file_id: r.remote_file_id,
                  size: toInt(r.file_size),
                  chunks: 1,
                  created_at: c.now,
                  retired_at: c.now,
                })),
              )
              .execute();
          }
        }
      }
      const sealed = await tx.kysely
        .updateTable("attic_ts_pack")
        .set({ state: "V", size: c.size, chunks: c.moves.length, sealed_at: c.now })
        .where("id", "=", c.packId)
        .where("state", "=", "C")
        .executeTakeFirst();
      if (sealed.numUpdatedRows !== 1n) throw new Error(`compaction pack ${c.packId} is no longer being written`);
      return retireIn(tx, c.retire, c.now);
    },
    { retries: 5 },
  );
}

/** Rows moved per statement: a fixed number, so the statement's text, and its compiled form, is the same every time. */
const MOVE_BATCH = 512;

/**
 * One statement moves a batch of rows to the new pack, each to its offset, where they still point
 * at `fromPack`: a join with a list of (id, offset) values (by primary key, linear in the batch; a
 * CASE over the ids costs the batch's size per row). A short batch is padded with ids no row has.
 */
async function moveRows(
  tx: Db,
  packId: number,
  fromPack: number | null,
  batch: readonly { chunkId: number; offset: number }[],
): Promise<{ remote_file: string; remote_file_id: string; file_size: unknown }[]> {
  const rows = batch.map((m) => sql`(CAST(${m.chunkId} AS BIGINT), CAST(${m.offset} AS BIGINT))`);
  for (let i = batch.length; i < MOVE_BATCH; i++) rows.push(sql`(CAST(${-1} AS BIGINT), CAST(${0} AS BIGINT))`);
  const from = fromPack === null ? sql`${sql.ref("chunk.pack_id")} IS NULL` : sql`${sql.ref("chunk.pack_id")} = ${fromPack}`;
  const result = await sql<{ remote_file: string; remote_file_id: string; file_size: unknown }>`
    UPDATE ${sql.table("chunk")} SET ${sql.ref("pack_id")} = ${packId}, ${sql.ref("pack_offset")} = ${sql.ref("v.column2")}
    FROM (VALUES ${sql.join(rows)}) AS v
    WHERE ${sql.ref("chunk.id")} = ${sql.ref("v.column1")} AND ${from}
    RETURNING ${sql.ref("chunk.remote_file")}, ${sql.ref("chunk.remote_file_id")}, ${sql.ref("chunk.file_size")}`.execute(tx.kysely);
  return result.rows;
}

/**
 * Retire sealed packs no live chunk names, and that no pending chunk created before their seal
 * could still name (settledBefore): checked here, in the transaction that retires them.
 */
async function retireIn(tx: Db, ids: readonly number[], now: Date): Promise<number> {
  let retired = 0;
  for (const batch of batches(ids, maxBatch(tx))) {
    const result = await tx.kysely
      .updateTable("attic_ts_pack")
      .set({ state: "R", retired_at: now })
      .where("id", "in", batch)
      .where("state", "=", "V")
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom("chunk")
              .select("chunk.id")
              .whereRef("chunk.pack_id", "=", "attic_ts_pack.id")
              .where("chunk.state", "in", LIVE),
          ),
        ),
      )
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom("chunk as pending")
              .select("pending.id")
              .where("pending.state", "=", "P")
              .whereRef("pending.created_at", "<=", "attic_ts_pack.sealed_at"),
          ),
        ),
      )
      .executeTakeFirst();
    retired += Number(result.numUpdatedRows);
  }
  return retired;
}

/** Retire sealed packs that hold no live chunk (nothing to copy; see retireIn). Returns how many. */
export async function retireDeadPacks(db: Db, ids: readonly number[], now: Date): Promise<number> {
  if (ids.length === 0) return 0;
  return transaction(db, (tx) => retireIn(tx, ids, now), { retries: 5 });
}

/** Retired packs whose grace period has passed: their objects may go. */
export async function retiredPacksBefore(db: Db, cutoff: Date, limit: number): Promise<PackRef[]> {
  const rows = await db.kysely
    .selectFrom("attic_ts_pack")
    .select(["id", "remote_file", "size"])
    .where("state", "=", "R")
    .where("retired_at", "<=", cutoff)
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map(toRef);
}

/** Packs a compaction started and never committed (state C), and abandoned open packs to remove (state D). */
export async function leftoverPacks(db: Db, limit: number): Promise<PackRef[]> {
  const rows = await db.kysely
    .selectFrom("attic_ts_pack")
    .select(["id", "remote_file", "size"])
    .where("state", "in", ["C", "D"])
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map(toRef);
}

/**
 * Open packs whose writer is gone: their lease (packLeaseName) ran out, or, for a pack opened
 * without one (by an atticd older than pack leases, which may still be running), the pack was
 * opened before `staleBefore` and none of its chunks was claimed since.
 */
export async function abandonedOpenPacks(db: Db, now: Date, staleBefore: Date | undefined): Promise<number[]> {
  const open = await db.kysely.selectFrom("attic_ts_pack").select(["id", "created_at"]).where("state", "=", "P").orderBy("id").execute();
  const abandoned: number[] = [];
  for (const batch of batches(open, maxBatch(db))) {
    const leases = await db.kysely
      .selectFrom("attic_ts_lease")
      .select(["name", "expires_at"])
      .where("name", "in", batch.map((p) => packLeaseName(toInt(p.id))))
      .execute();
    const expiry = new Map(leases.map((l) => [l.name, parseTimestamp(l.expires_at)]));
    const unleased: number[] = [];
    for (const p of batch) {
      const id = toInt(p.id);
      const expires = expiry.get(packLeaseName(id));
      if (expires) {
        if (expires < now) abandoned.push(id);
      } else if (staleBefore !== undefined && parseTimestamp(p.created_at) < staleBefore) unleased.push(id);
    }
    if (unleased.length === 0) continue;
    const recent = await db.kysely
      .selectFrom("chunk")
      .select("pack_id")
      .where("pack_id", "in", unleased)
      .where("created_at", ">=", staleBefore!)
      .groupBy("pack_id")
      .execute();
    const active = new Set(recent.map((r) => toInt(r.pack_id)));
    abandoned.push(...unleased.filter((id) => !active.has(id)));
  }
  return abandoned.sort((a, b) => a - b);
}

/**
 * Take over an open pack whose writer is gone, in one transaction: sealed (V) at the end of the
 * last chunk that ever turned valid in it (the bytes after it were never durable, or belong to no
 * chunk), or, when no chunk row names it, marked D for its object and row to go. "alive": its
 * lease was renewed meanwhile; "gone": it is no longer open.
 */
export async function takeOverOpenPack(db: Db, id: number, now: Date): Promise<"sealed" | "empty" | "alive" | "gone"> {
  return transaction(
    db,
    async (tx) => {
      const lease = await tx.kysely.selectFrom("attic_ts_lease").select("expires_at").where("name", "=", packLeaseName(id)).executeTakeFirst();
      if (lease && parseTimestamp(lease.expires_at) >= now) return "alive";
      // this update waits for a writer's transaction turning chunks of the pack valid (it
      // share-locks the row: markPackedChunksValid), and every later one fails
      const taken = await tx.kysely.updateTable("attic_ts_pack").set({ state: "V", sealed_at: now }).where("id", "=", id).where("state", "=", "P").executeTakeFirst();
      if (taken.numUpdatedRows !== 1n) return "gone";
      // a statement of its own (PostgreSQL: a snapshot taken after the update got the row), so it counts those chunks
      const extent = await tx.kysely
        .selectFrom("chunk")
        .select((eb) => [eb.fn.max(sql<number>`${sql.ref("pack_offset")} + ${sql.ref("file_size")}`).as("end"), eb.fn.countAll().as("n")])
        .where("pack_id", "=", id)
        .executeTakeFirstOrThrow();
      await tx.kysely.deleteFrom("attic_ts_lease").where("name", "=", packLeaseName(id)).execute();
      if (toInt(extent.n) === 0) {
        await tx.kysely.updateTable("attic_ts_pack").set({ state: "D" }).where("id", "=", id).execute();
        return "empty";
      }
      await tx.kysely
        .updateTable("attic_ts_pack")
        .set({ size: toInt(extent.end), chunks: toInt(extent.n) })
        .where("id", "=", id)
        .execute();
      return "sealed";
    },
    { retries: 5 },
  );
}

/**
 * Remove the rows of retired, leftover or abandoned packs whose objects are gone, with the rows of dead
 * chunks that still name them (a retired pack has no live chunk: checked when it was retired).
 */
export async function deletePackRows(db: Db, ids: readonly number[]): Promise<number> {
  let deleted = 0;
  for (const batch of batches(ids, maxBatch(db))) {
    deleted += await transaction(db, async (tx) => {
      await tx.kysely.deleteFrom("chunk").where("pack_id", "in", batch).where("state", "=", "D").execute();
      const result = await tx.kysely.deleteFrom("attic_ts_pack").where("id", "in", batch).where("state", "in", ["R", "C", "D"]).executeTakeFirst();
      return Number(result.numDeletedRows);
    });
  }
  return deleted;
}

export interface PackTotals {
  /** sealed packs (holding live chunks, or awaiting compaction) */
  packs: number;
  /** packs being written by uploads */
  openPacks: number;
  /** retired packs awaiting deletion after the grace period */
  retiredPacks: number;
  /** bytes of sealed packs */
  packBytes: number;
  /** bytes of retired packs: freed when the grace period ends */
  retiredBytes: number;
  /** when the oldest retired pack was retired */
  oldestRetiredAt: Date | null;
}

/** Pack counts and sizes by state, for /metrics and the dashboard (one aggregate over packs). */
export async function packTotals(db: Db): Promise<PackTotals> {
  const rows = await db.kysely
    .selectFrom("attic_ts_pack")
    .select((eb) => [
      "state",
      eb.fn.countAll().as("n"),
      eb.fn.coalesce(eb.fn.sum<number>("size"), sql<number>`0`).as("bytes"),
      eb.fn.min("retired_at").as("oldest"),
    ])
    .groupBy("state")
    .execute();
  const totals: PackTotals = { packs: 0, openPacks: 0, retiredPacks: 0, packBytes: 0, retiredBytes: 0, oldestRetiredAt: null };
  for (const r of rows) {
    const state = r.state.trim();
    if (state === "V") {
      totals.packs = toInt(r.n);
      totals.packBytes = toInt(r.bytes);
    } else if (state === "P") totals.openPacks = toInt(r.n);
    else if (state === "R") {
      totals.retiredPacks = toInt(r.n);
      totals.retiredBytes = toInt(r.bytes);
      totals.oldestRetiredAt = r.oldest === null ? null : parseTimestamp(r.oldest);
    }
  }
  return totals;
}

/** Sealed packs after `afterId`, by id (verify reads them one at a time). */
export async function sealedPacksAfter(db: Db, afterId: number, limit: number): Promise<PackRef[]> {
  const rows = await db.kysely
    .selectFrom("attic_ts_pack")
    .select(["id", "remote_file", "size"])
    .where("state", "=", "V")
    .where("id", ">", afterId)
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map(toRef);
}

/** Valid chunks whose pack is not a sealed one (retired, being deleted or gone): their bytes may vanish. */
export async function chunksInUnsealedPacks(db: Db, limit: number): Promise<{ id: number; packId: number; remoteFileId: string }[]> {
  const rows = await db.kysely
    .selectFrom("chunk")
    .leftJoin("attic_ts_pack", "attic_ts_pack.id", "chunk.pack_id")
    .select(["chunk.id as id", "chunk.pack_id as pack_id", "chunk.remote_file_id as remote_file_id"])
    .where("chunk.pack_id", "is not", null)
    .where("chunk.state", "=", "V")
    .where((eb) => eb.or([eb("attic_ts_pack.id", "is", null), eb("attic_ts_pack.state", "not in", ["V", "P"])]))
    .orderBy("chunk.id")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: toInt(r.id), packId: toInt(r.pack_id), remoteFileId: r.remote_file_id }));
}

export interface PackedChunk extends LiveChunk {
  packId: number;
  /** the pack's RemoteFile JSON */
  packFile: string;
  /** the chunk's own RemoteFile JSON: where it goes in upstream's layout */
  remoteFile: string;
  remoteFileId: string;
}

/** Valid chunks in sealed packs after the cursor, in (pack, offset) order: `atticadm unpack` reads them so. */
export async function packedChunksAfter(db: Db, after: { packId: number; offset: number }, limit: number): Promise<PackedChunk[]> {
  const rows = await db.kysely
    .selectFrom("chunk")
    .innerJoin("attic_ts_pack", "attic_ts_pack.id", "chunk.pack_id")
    .select([
      "chunk.id as id",
      "chunk.pack_id as pack_id",
      "chunk.pack_offset as pack_offset",
      "chunk.file_size as file_size",
      "chunk.file_hash as file_hash",
      "chunk.remote_file as remote_file",
      "chunk.remote_file_id as remote_file_id",
      "attic_ts_pack.remote_file as pack_file",
    ])
    .where("chunk.state", "=", "V")
    .where("attic_ts_pack.state", "=", "V")
    .where((eb) =>
      eb.or([eb("chunk.pack_id", ">", after.packId), eb.and([eb("chunk.pack_id", "=", after.packId), eb("chunk.pack_offset", ">", after.offset)])]),
    )
    .orderBy("chunk.pack_id")
    .orderBy("chunk.pack_offset")
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    id: toInt(r.id),
    packId: toInt(r.pack_id),
    offset: toInt(r.pack_offset),
    length: toInt(r.file_size),
    fileHash: r.file_hash,
    remoteFile: r.remote_file,
    remoteFileId: r.remote_file_id,
    packFile: r.pack_file,
  }));
}

/**
 * Chunks now stored as their own objects again: their rows leave their packs (where they still
 * point at them), and a retirement of an object of the same name (packed earlier by compaction,
 * not yet deleted) is called off, in one transaction. Returns how many rows moved.
 */
export async function unpackChunkRows(db: Db, moves: readonly { chunkId: number; packId: number; remoteFileId: string }[]): Promise<number> {
  return transaction(
    db,
    async (tx) => {
      let moved = 0;
      for (const batch of batches(moves, maxBatch(tx, 2))) {
        const byPack = new Map<number, number[]>();
        for (const m of batch) byPack.set(m.packId, [...(byPack.get(m.packId) ?? []), m.chunkId]);
        for (const [packId, ids] of byPack) {
          const result = await tx.kysely
            .updateTable("chunk")
            .set({ pack_id: null, pack_offset: null })
            .where("id", "in", ids)
            .where("pack_id", "=", packId)
            .executeTakeFirst();
          moved += Number(result.numUpdatedRows);
        }
        await tx.kysely
          .deleteFrom("attic_ts_pack")
          .where("state", "=", "R")
          .where("remote_file_id", "in", batch.map((m) => m.remoteFileId))
          .execute();
      }
      return moved;
    },
    { retries: 5 },
  );
}

/** Valid or pending chunks in packs: after `atticadm unpack`, 0 unless uploads still write packs. */
export async function packedChunkCount(db: Db): Promise<{ valid: number; pending: number }> {
  const rows = await db.kysely
    .selectFrom("chunk")
    .select((eb) => ["state", eb.fn.countAll().as("n")])
    .where("pack_id", "is not", null)
    .where("state", "in", LIVE)
    .groupBy("state")
    .execute();
  const n = (st: string) => toInt(rows.find((r) => r.state.trim() === st)?.n ?? 0);
  return { valid: n("V"), pending: n("P") };
}

export interface PackSpace {
  /** sealed packs, and their bytes */
  packs: number;
  packBytes: number;
  /** packs being written by uploads */
  openPacks: number;
  /** retired packs (and objects of their own that were packed) awaiting deletion after the grace period, and their bytes */
  retiredPacks: number;
  retiredBytes: number;
  /** bytes of live chunks in sealed packs */
  liveBytes: number;
  /** bytes of deleted chunks still inside sealed packs: the holes */
  freeBytes: number;
  /** what compaction frees: the holes of packs at or past the threshold (wholly dead ones included), and the retired packs */
  reclaimableBytes: number;
}

/** The pack figures of /metrics and the dashboard: one aggregate over packed chunks and one over packs. */
export async function packSpace(db: Db, threshold: number): Promise<PackSpace> {
  const [figures, totals] = await Promise.all([packFigures(db), packTotals(db)]);
  const space: PackSpace = {
    packs: totals.packs,
    packBytes: totals.packBytes,
    openPacks: totals.openPacks,
    retiredPacks: totals.retiredPacks,
    retiredBytes: totals.retiredBytes,
    liveBytes: 0,
    freeBytes: 0,
    reclaimableBytes: totals.retiredBytes,
  };
  for (const p of figures) {
    const dead = Math.max(0, p.size - p.liveBytes);
    space.liveBytes += p.liveBytes;
    space.freeBytes += dead;
    if (p.liveChunks === 0 || (p.size > 0 && dead / p.size >= threshold)) space.reclaimableBytes += dead;
  }
  return space;
}
