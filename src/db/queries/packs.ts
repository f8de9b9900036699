// Queries on `attic_ts_pack` and the pack columns of `chunk` (docs/packs.md). A pack row is
// inserted open (P) before the pack's first byte and sealed (V) once the pack is durable and
// complete; chunks turn valid with their pack and offset only after their bytes are durable.
import { transaction, type Db } from "../connect.ts";
import { PACK_OPEN, PACK_SEALED } from "../schema.ts";
import { notIndexed } from "./plan.ts";
import { toInt } from "../values.ts";
import { batchParam, fixedStatement } from "./prepared.ts";

/**
 * The lease an atticd holds on each pack it has open: taken with the pack's row, renewed while the
 * pack is open, released when it is sealed. An open pack whose lease ran out belongs to a writer
 * that is gone; the garbage collector seals it or removes it (gc/abandoned-packs.ts).
 */
export function packLeaseName(packId: number): string {
  return `pack:${packId}`;
}

/** A new open pack (state P); with `lease`, its lease too, in the same transaction. */
export async function insertPack(db: Db, pack: { remote_file: string; remote_file_id: string }, lease?: { owner: string; ttlMs: number }): Promise<number> {
  return transaction(db, async (tx) => {
    const now = new Date();
    const row = await tx.kysely
      .insertInto("attic_ts_pack")
      .values({ state: PACK_OPEN, remote_file: pack.remote_file, remote_file_id: pack.remote_file_id, size: 0, chunks: 0, created_at: now })
      .returning("id")
      .executeTakeFirstOrThrow();
    const id = toInt(row.id);
    if (lease) {
      await tx.kysely
        .insertInto("attic_ts_lease")
        .values({ name: packLeaseName(id), owner: lease.owner, expires_at: new Date(now.getTime() + lease.ttlMs) })
        .execute();
    }
    return id;
  });
}

/** Keep alive the leases of every pack `owner` has open (one statement whatever their number). */
export async function renewPackLeases(db: Db, owner: string, ttlMs: number): Promise<number> {
  const result = await db.kysely
    .updateTable("attic_ts_lease")
    .set({ expires_at: new Date(Date.now() + ttlMs) })
    .where("owner", "=", owner)
    .where("name", "like", "pack:%")
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export async function releasePackLease(db: Db, packId: number, owner: string): Promise<void> {
  await db.kysely.deleteFrom("attic_ts_lease").where("name", "=", packLeaseName(packId)).where("owner", "=", owner).execute();
}

export async function sealPack(db: Db, id: number, size: number, chunks: number): Promise<void> {
  await db.kysely
    .updateTable("attic_ts_pack")
    .set({ state: PACK_SEALED, size, chunks, sealed_at: new Date() })
    .where("id", "=", id)
    .where("state", "=", PACK_OPEN)
    .execute();
}

/** An open pack that failed before any of it was durable (nothing refers to it). */
export async function deleteOpenPack(db: Db, id: number): Promise<void> {
  await db.kysely.deleteFrom("attic_ts_pack").where("id", "=", id).where("state", "=", PACK_OPEN).execute();
}

export interface PackedChunk {
  id: number;
  fileHash: string;
  fileSize: number;
  packId: number;
  packOffset: number;
}

/** Chunk rows to mark valid, in columns (one entry per chunk in each). */
export interface PackedChunks {
  ids: number[];
  fileHashes: string[];
  fileSizes: number[];
  packIds: number[];
  packOffsets: number[];
}

/**
 * Pending chunks whose bytes are durable in a pack turn valid, with their pack and offset, in
 * one transaction. Throws (and changes nothing) when one is no longer pending (reaped as stale).
 */
export async function markPackedChunksValid(db: Db, chunks: readonly PackedChunk[]): Promise<void> {
  const columns: PackedChunks = {
    ids: chunks.map((c) => c.id),
    fileHashes: chunks.map((c) => c.fileHash),
    fileSizes: chunks.map((c) => c.fileSize),
    packIds: chunks.map((c) => c.packId),
    packOffsets: chunks.map((c) => c.packOffset),
  };
  await markPackedSlicesValid(db, () => [columns]);
}

/**
 * `markPackedChunksValid` for an upload's whole commit, given in slices (built as they are
 * asked for: `slices` is called again if the transaction runs again): one statement per slice, in
 * one transaction. Each statement's parameters are one slice's, not the whole upload's (a 2 GiB
 * NAR's 32,000 chunks in one statement cost some 15 MiB of the main thread's peak with PostgreSQL,
 * whose driver renders each array parameter as one text literal).
 */
export async function markPackedSlicesValid(db: Db, slices: () => Iterable<PackedChunks>): Promise<void> {
  await transaction(db, async (tx) => {
    /** packs already found to hold their chunks up to this end */
    const held = new Map<number, number>();
    for (const slice of slices()) {
      const { ids, fileHashes, fileSizes, packIds, packOffsets } = slice;
      if (ids.length === 0) continue;
      await assertPacksHold(tx, slice, held);
      const params =
        tx.engine === "sqlite"
          ? [batchParam(tx, ids.map((id, i) => [id, fileHashes[i], fileSizes[i], packIds[i], packOffsets[i]]))]
          : [ids, fileHashes, fileSizes, packIds, packOffsets];
      const result = await MARK_PACKED_VALID.run(tx, params);
      if (result.changes !== BigInt(new Set(ids).size)) {
        throw new Error(`chunks ${ids.join(", ")}: one is no longer pending`);
      }
    }
  });
}

// one statement whatever the number of chunks (an upload's whole commit), joined by id: fixed text (prepared.ts)
const MARK_PACKED_VALID = fixedStatement({
  sqlite:
    "UPDATE chunk SET state = 'V', file_hash = r.value ->> 1, file_size = r.value ->> 2, pack_id = r.value ->> 3, pack_offset = r.value ->> 4 " +
    "FROM json_each(?) AS r WHERE chunk.id = r.value ->> 0 AND +chunk.state = 'P'",
  postgres:
    "UPDATE chunk SET state = 'V', file_hash = r.h, file_size = r.s, pack_id = r.p, pack_offset = r.o " +
    "FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) AS r(id, h, s, p, o) WHERE chunk.id = r.id AND chunk.state = 'P'",
});

/**
 * Each pack holding these chunks is still open, or sealed with their bytes inside it: a pack the
 * garbage collector took over from a writer it judged gone (its lease ran out) was sealed at the
 * end of the chunks valid then, or removed. The rows read are share-locked until the commit
 * (PostgreSQL), so a takeover waits for this transaction and then counts its chunks.
 */
async function assertPacksHold(tx: Db, chunks: PackedChunks, held: Map<number, number>): Promise<void> {
  const ends = new Map<number, number>();
  chunks.packIds.forEach((packId, i) => ends.set(packId, Math.max(ends.get(packId) ?? 0, chunks.packOffsets[i]! + chunks.fileSizes[i]!)));
  for (const [packId, end] of ends) {
    if ((held.get(packId) ?? -1) >= end) continue;
    const found = await tx.dialect
      .forShare(
        tx.kysely
          .selectFrom("attic_ts_pack")
          .select("id")
          .where("id", "=", packId)
          .where((eb) => eb.or([eb("state", "=", PACK_OPEN), eb.and([eb("state", "=", PACK_SEALED), eb("size", ">=", end)])])),
      )
      .executeTakeFirst();
    if (!found) throw new Error(`pack ${packId} is no longer open (taken over by the garbage collector): its chunks cannot turn valid`);
    held.set(packId, end);
  }
}

/** Take one more hold on a chunk another upload of this process is writing (pending or valid). */
export async function holdChunk(db: Db, id: number): Promise<boolean> {
  const result = await db.kysely
    .updateTable("chunk")
    .set((eb) => ({ holders_count: eb("holders_count", "+", 1), held_at: new Date() }))
    .where("id", "=", id)
    .where(notIndexed(db, "state"), "in", ["P", "V"])
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Every valid chunk stored in the pack (a pack found lost loses them all). */
export async function chunksInPack(db: Db, packId: number): Promise<number[]> {
  const rows = await db.kysely.selectFrom("chunk").select("id").where("pack_id", "=", packId).where(notIndexed(db, "state"), "=", "V").execute();
  return rows.map((r) => toInt(r.id));
}

/** Where a chunk's bytes are when it is packed: its pack's RemoteFile JSON and its offset; null for a chunk stored as one object. */
export async function packLocation(db: Db, chunkId: number): Promise<{ packId: number; remoteFile: string; offset: number } | null> {
  const row = await db.kysely
    .selectFrom("chunk")
    .innerJoin("attic_ts_pack", "attic_ts_pack.id", "chunk.pack_id")
    .select(["chunk.pack_id as pack_id", "chunk.pack_offset as pack_offset", "attic_ts_pack.remote_file as remote_file"])
    .where("chunk.id", "=", chunkId)
    .executeTakeFirst();
  if (!row || row.pack_id === null || row.pack_offset === null) return null;
  return { packId: toInt(row.pack_id), remoteFile: row.remote_file, offset: toInt(row.pack_offset) };
}
