// Queries on `nar` and `chunkref`. A hold (holders_count + 1) keeps GC away from a NAR while an
// upload links an object to it; the holder releases it when done. Holds record `held_at` so GC
// can see through holds leaked by a crashed server (see gc.ts).
import { UploadRowsReaped } from "./reaped.ts";
import { takeLease, tryAcquireLease } from "./leases.ts";
import { transaction, type Db } from "../connect.ts";
import { parseTimestamp } from "../values.ts";
import type { NarRow, RowState } from "../schema.ts";
import { notIndexed } from "./plan.ts";
import { insertChunkRefs, releaseChunks } from "./chunks.ts";
import { batchParam, fixedStatement } from "./prepared.ts";
import { NAR_COLUMNS, toNarRow } from "./rows.ts";

/**
 * Find a valid NAR with this hash and hold it, in one statement. The state is checked on the
 * updated row itself: on PostgreSQL an UPDATE that waited for GC's lock re-checks it on the new
 * row version, so a NAR that GC just removed or marked is never held and reused.
 */
export async function findAndLockNar(db: Db, narHash: string): Promise<NarRow | null> {
  const row = await db.kysely
    .updateTable("nar")
    .set((eb) => ({ holders_count: eb("holders_count", "+", 1), held_at: new Date() }))
    .where("id", "=", (eb) =>
      eb
        .selectFrom("nar as candidate")
        .select("candidate.id")
        .where("candidate.nar_hash", "=", narHash)
        .where(notIndexed(db, "candidate.state"), "=", "V")
        .orderBy("candidate.id")
        .limit(1),
    )
    .where(notIndexed(db, "state"), "=", "V")
    .returning(NAR_COLUMNS)
    .executeTakeFirst();
  return row ? toNarRow(row) : null;
}

export type NarClaim = { kind: "valid" } | { kind: "busy" } | { kind: "created"; id: number };

/**
 * Create the pending row of a NAR about to be uploaded, unless a valid one exists by now
 * ("valid": go and deduplicate) or another upload on any replica is storing the same NAR (a
 * pending row newer than `busyAfter`: "busy", wait and look again). On PostgreSQL the check and
 * the insert run under an advisory lock on the hash, so two replicas never both create it.
 */
/** The lease of the upload that is storing a pending NAR with this hash (see claimNar). */
export function narClaimLeaseName(narHash: string): string {
  return `${NAR_CLAIM_LEASE_PREFIX}${narHash}`;
}
export const NAR_CLAIM_LEASE_PREFIX = "nar-upload:";

/**
 * Claim a NAR hash for an upload: `valid` (dedup), `busy` (another upload is storing it) or a
 * new pending NAR. With `lease`, "busy" means the other upload's claim lease is alive (renewed
 * by its process, see leases.ts): a claim whose process died is taken over once its lease runs
 * out, whatever the pending row's age; and the new claim takes the lease. Without it, any
 * pending NAR younger than `busyAfter` counts as busy.
 */
export async function claimNar(
  db: Db,
  row: Omit<NewNarRow, "state">,
  opts: { busyAfter: Date; ignoreValid?: boolean; lease?: { owner: string; ttlMs: number } },
): Promise<NarClaim> {
  return transaction(db, async (tx) => {
    await tx.dialect.lockKeys(tx.kysely, [`nar:${row.nar_hash}`]);
    const existing = await tx.kysely
      .selectFrom("nar")
      .select(["state", "created_at"])
      .where("nar_hash", "=", row.nar_hash)
      .where(notIndexed(tx, "state"), "in", ["V", "P"])
      .execute();
    if (!opts.ignoreValid && existing.some((n) => n.state === "V")) return { kind: "valid" };
    const { lease } = opts;
    if (lease === undefined) {
      if (existing.some((n) => n.state === "P" && parseTimestamp(n.created_at) > opts.busyAfter)) return { kind: "busy" };
    } else if (existing.some((n) => n.state === "P")) {
      // under the key lock: of two uploads waiting for a dead claim, one takes it over
      if (!(await tryAcquireLease(tx, narClaimLeaseName(row.nar_hash), lease.owner, lease.ttlMs))) return { kind: "busy" };
    } else {
      await takeLease(tx, narClaimLeaseName(row.nar_hash), lease.owner, lease.ttlMs);
    }
    return { kind: "created", id: await insertNar(tx, { ...row, state: "P" }) };
  });
}

export async function releaseNar(db: Db, id: number): Promise<void> {
  await db.kysely
    .updateTable("nar")
    .set((eb) => ({ holders_count: eb("holders_count", "-", 1) }))
    .where("id", "=", id)
    .where("holders_count", ">", 0)
    .execute();
}

/** True when the NAR does not exist or fewer of its chunks are valid than it has (a chunkref lost its chunk). */
export async function narHasMissingChunks(db: Db, narId: number): Promise<boolean> {
  const row = await db.kysely
    .selectFrom("nar")
    .leftJoin("chunkref", "chunkref.nar_id", "nar.id")
    .leftJoin("chunk", (join) => join.onRef("chunk.id", "=", "chunkref.chunk_id").on("chunk.state", "=", "V"))
    .select((eb) => ["nar.num_chunks", eb.fn.count<number>("chunk.id").as("valid")])
    .where("nar.id", "=", narId)
    .groupBy(["nar.id", "nar.num_chunks"])
    .executeTakeFirst();
  if (!row) return true;
  return Number(row.valid) < Number(row.num_chunks);
}

export interface NewNarRow {
  state: RowState;
  nar_hash: string;
  nar_size: number;
  compression: string;
  num_chunks: number;
  holders_count?: number;
  /** default: now */
  created_at?: Date;
}

export async function insertNar(db: Db, row: NewNarRow): Promise<number> {
  const now = new Date();
  const holders = row.holders_count ?? 0;
  const inserted = await db.kysely
    .insertInto("nar")
    .values({
      state: row.state,
      nar_hash: row.nar_hash,
      nar_size: row.nar_size,
      compression: row.compression,
      num_chunks: row.num_chunks,
      holders_count: holders,
      created_at: row.created_at ?? now,
      held_at: holders > 0 ? now : null,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return inserted.id;
}

/**
 * Pending -> valid with its final chunk count. Throws when the NAR is no longer pending (GC
 * reaped it as stale), so the upload fails instead of publishing a NAR without chunks.
 */
export async function markNarValid(db: Db, id: number, numChunks: number): Promise<void> {
  const result = await db.kysely
    .updateTable("nar")
    .set({ state: "V", num_chunks: numChunks })
    .where("id", "=", id)
    .where(notIndexed(db, "state"), "=", "P")
    .executeTakeFirst();
  if (result.numUpdatedRows === 0n) throw new UploadRowsReaped(`the pending NAR ${id} is no longer pending`);
}

export async function getNar(db: Db, id: number): Promise<NarRow | null> {
  const row = await db.kysely.selectFrom("nar").select(NAR_COLUMNS).where("id", "=", id).executeTakeFirst();
  return row ? toNarRow(row) : null;
}

/** Delete the NAR only while it is still pending: a cleanup that runs late must never drop a NAR made valid meanwhile. */
export async function deletePendingNar(db: Db, id: number): Promise<boolean> {
  const result = await db.kysely.deleteFrom("nar").where("id", "=", id).where("state", "=", "P").executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/**
 * Link chunk `chunkId` at position `seq` of the NAR. Only a valid chunk is linked: one that GC
 * has marked deleted would leave the NAR pointing at a file about to vanish, so that throws. On
 * PostgreSQL the chunk row is share-locked until the caller's statement commits, so GC cannot
 * mark it deleted in between.
 */
export async function insertChunkRef(db: Db, narId: number, seq: number, chunkId: number): Promise<number> {
  const inserted = await db.kysely
    .insertInto("chunkref")
    .columns(["nar_id", "seq", "chunk_id"])
    .expression((eb) =>
      eb
        .selectFrom("chunk")
        // typed casts: PostgreSQL would read bare parameters in a SELECT list as text
        .select((s) => [s.cast(s.val(narId), "bigint").as("nar_id"), s.cast(s.val(seq), "integer").as("seq"), "chunk.id as chunk_id"])
        .where("chunk.id", "=", chunkId)
        .where(notIndexed(db, "chunk.state"), "=", "V")
        .$call((q) => db.dialect.forShare(q)),
    )
    .returning("id")
    .executeTakeFirst();
  if (!inserted) throw new UploadRowsReaped(`chunk ${chunkId}, to be linked into NAR ${narId}, is not valid`);
  return inserted.id;
}

export interface ChunkLink {
  seq: number;
  chunkId: number;
}

/**
 * Link many chunks into the NAR and give up the upload's holds on them, in one transaction: the
 * batched form of insertChunkRef + releaseChunk. Every chunk must be valid, or pending (a packed chunk turns valid when its upload commits,
 * before the NAR does: docs/packs.md) (on PostgreSQL they
 * are locked until the commit, so GC cannot mark one deleted in between); otherwise nothing is
 * written and it throws.
 */
export async function linkChunks(db: Db, narId: number, links: readonly ChunkLink[]): Promise<void> {
  if (links.length === 0) return;
  await transaction(db, async (tx) => {
    const ids = [...new Set(links.map((l) => l.chunkId))].sort((a, b) => a - b);
    // locked for update in id order: two replicas linking overlapping batches queue up instead of
    // deadlocking on a share lock each wants to upgrade for the release below (NO KEY UPDATE, the
    // release's own lock: it leaves the key-share locks of chunkrefs inserted by a claim alone)
    const valid = await LINK_LOCK_CHUNKS.run<{ id: unknown }>(tx, [batchParam(tx, ids)]);
    if (valid.rows.length !== ids.length) {
      const found = new Set(valid.rows.map((v) => Number(v.id)));
      const missing = ids.filter((id) => !found.has(id));
      throw new UploadRowsReaped(`chunks ${missing.join(", ")}, to be linked into NAR ${narId}, are not valid`);
    }
    await insertChunkRefs(tx, narId, links.map((l) => [l.seq, l.chunkId] as const));
    await releaseChunks(tx, links.map((l) => l.chunkId));
  }, { retries: 3 });
}

// linkChunks' statements, fixed text (prepared.ts): the batch is one parameter
const LINK_LOCK_CHUNKS = fixedStatement({
  sqlite: "SELECT id FROM chunk WHERE id IN (SELECT value FROM json_each(?)) AND +state IN ('V', 'P') ORDER BY id",
  postgres: "SELECT id FROM chunk WHERE id = ANY($1::bigint[]) AND state IN ('V', 'P') ORDER BY id FOR NO KEY UPDATE",
});
