// Queries on `chunk`. A chunk is inserted pending (P) and held by its uploader, becomes valid
// (V) once its file is stored, and stays alive while a chunkref or a hold points at it.
import { UploadRowsReaped } from "./reaped.ts";
import { sql } from "kysely";
import { transaction, type Db } from "../connect.ts";
import type { ChunkRow } from "../schema.ts";
import { maxBatch } from "./batch.ts";
import { batches } from "../../util/concurrency.ts";
import { notIndexed } from "./plan.ts";
import { CHUNK_COLUMNS, toChunkRow } from "./rows.ts";
import { formatSqliteTimestamp, parseTimestamp, toInt } from "../values.ts";
import { batchParam, fixedStatement } from "./prepared.ts";

/**
 * Find a valid chunk with this hash and compression and hold it, in one statement (see
 * findAndLockNar for why the state is checked on the updated row itself).
 */
export async function findAndLockChunk(db: Db, chunkHash: string, compression: string): Promise<ChunkRow | null> {
  const row = await db.kysely
    .updateTable("chunk")
    .set((eb) => ({ holders_count: eb("holders_count", "+", 1), held_at: new Date() }))
    .where("id", "=", (eb) =>
      eb
        .selectFrom("chunk as candidate")
        .select("candidate.id")
        .where("candidate.chunk_hash", "=", chunkHash)
        .where("candidate.compression", "=", compression)
        .where(notIndexed(db, "candidate.state"), "=", "V")
        .orderBy("candidate.id")
        .limit(1),
    )
    .where(notIndexed(db, "state"), "=", "V")
    .returning(CHUNK_COLUMNS)
    .executeTakeFirst();
  return row ? toChunkRow(row) : null;
}

export type ChunkClaim = { kind: "found"; chunk: ChunkRow } | { kind: "busy" } | { kind: "created"; id: number };

/**
 * The one place where a chunk is either found (and held) or created (pending, held by us), so
 * that uploads of the same chunk on several replicas store it once: on PostgreSQL the check and
 * the insert run under a transaction-scoped advisory lock on the chunk's hash. When another
 * upload is writing the same chunk right now (a pending row newer than `busyAfter`, or one that
 * became valid between our two looks), the answer is "busy": wait a moment and claim again.
 * Older pending rows are leftovers (GC reaps them).
 */
export async function claimChunk(db: Db, row: NewChunkRow, busyAfter: Date): Promise<ChunkClaim> {
  return transaction(db, async (tx) => {
    await tx.dialect.lockKeys(tx.kysely, [`chunk:${row.chunk_hash}/${row.compression}`]);
    const found = await findAndLockChunk(tx, row.chunk_hash, row.compression);
    if (found) return { kind: "found", chunk: found };
    // One look at V and P rows together: a row that turned V since the statement above (its
    // writer finished meanwhile) must send us back to find it, not make us store a copy.
    const others = await tx.kysely
      .selectFrom("chunk")
      .select(["state", "created_at"])
      .where("chunk_hash", "=", row.chunk_hash)
      .where("compression", "=", row.compression)
      .where(notIndexed(tx, "state"), "in", ["V", "P"])
      .execute();
    if (others.some((c) => c.state === "V" || parseTimestamp(c.created_at) > busyAfter)) return { kind: "busy" };
    return { kind: "created", id: await insertPendingChunk(tx, row) };
  });
}

/**
 * The batched form of claimChunk, for uploads: one transaction claims many chunks of one
 * compression. Rows must have distinct hashes. Returns one claim per row, in order. On
 * PostgreSQL the advisory locks are taken in sorted order, so two replicas claiming overlapping
 * batches queue up instead of deadlocking.
 *
 * With `link`, the same transaction also links every chunk found or created into the pending NAR
 * at its position: those claims take no hold (the chunkref keeps them alive, so there is nothing
 * to give up later); rows should then be inserted with `holders_count: 0`. Only "busy" claims are
 * left for the caller to claim again and link. On PostgreSQL a found chunk's row is still updated
 * (`held_at`): a garbage collection whose snapshot predates this commit then fails to mark it
 * deleted (REPEATABLE READ, gc.ts's header) instead of missing the new chunkref.
 */
export async function claimChunks(db: Db, rows: readonly NewChunkRow[], busyAfter: Date, link?: ClaimLink): Promise<ChunkClaim[]> {
  if (rows.length === 0) return [];
  const compression = rows[0]!.compression;
  if (rows.some((r) => r.compression !== compression)) throw new Error("claimChunks: one compression per batch");
  const hashes = rows.map((r) => r.chunk_hash);
  if (new Set(hashes).size !== hashes.length) throw new Error("claimChunks: hashes must be distinct");
  if (rows.length > maxBatch(db, 8)) throw new Error(`claimChunks: at most ${maxBatch(db, 8)} rows per batch`);
  if (link && link.seqs.length !== rows.length) throw new Error("claimChunks: one seq per row");
  return transaction(db, async (tx) => {
    await tx.dialect.lockKeys(tx.kysely, hashes.map((h) => `chunk:${h}/${compression}`));
    const now = new Date();
    // one valid row per hash (the lowest id, as findAndLockChunk picks): held, or touched when linked here
    const found = link
      ? await CLAIM_FOUND_LINKED.run<Record<string, unknown>>(tx, tx.engine === "sqlite" ? [batchParam(tx, hashes), compression] : [now, hashes, compression])
      : await CLAIM_FOUND.run<Record<string, unknown>>(tx, [now, batchParam(tx, hashes), compression]);
    const byHash = new Map<string, ChunkClaim>();
    for (const raw of found.rows) {
      const chunk = toChunkRow(raw);
      byHash.set(chunk.chunk_hash, { kind: "found", chunk });
    }
    const rest = rows.filter((r) => !byHash.has(r.chunk_hash));
    if (rest.length > 0) {
      const others = await CLAIM_OTHERS.run<{ chunk_hash: string; state: string; created_at: unknown }>(tx, [batchParam(tx, rest.map((r) => r.chunk_hash)), compression]);
      for (const c of others.rows) {
        if (c.state === "V" || parseTimestamp(c.created_at) > busyAfter) byHash.set(c.chunk_hash, { kind: "busy" });
      }
      const fresh = rest.filter((r) => !byHash.has(r.chunk_hash));
      if (fresh.length > 0) {
        const created = (r: NewChunkRow) => (tx.engine === "sqlite" ? formatSqliteTimestamp(r.created_at ?? now) : (r.created_at ?? now).toISOString());
        const params =
          tx.engine === "sqlite"
            ? [compression, now, batchParam(tx, fresh.map((r) => [r.chunk_hash, r.chunk_size, r.remote_file, r.remote_file_id, r.holders_count ?? 1, created(r)]))]
            : [
                compression,
                now,
                fresh.map((r) => r.chunk_hash),
                fresh.map((r) => r.chunk_size),
                fresh.map((r) => r.remote_file),
                fresh.map((r) => r.remote_file_id),
                fresh.map((r) => r.holders_count ?? 1),
                fresh.map(created),
              ];
        const inserted = await CLAIM_INSERT.run<{ id: unknown; chunk_hash: string }>(tx, params);
        for (const row of inserted.rows) byHash.set(row.chunk_hash, { kind: "created", id: toInt(row.id) });
      }
    }
    const claims = rows.map((r) => byHash.get(r.chunk_hash)!);
    if (link) {
      const links: [number, number][] = [];
      claims.forEach((c, k) => {
        if (c.kind !== "busy") links.push([link.seqs[k]!, c.kind === "found" ? c.chunk.id : c.id]);
      });
      await insertChunkRefs(tx, link.narId, links);
    }
    return claims;
    // a deadlock with another replica's linkChunks (rows locked in another order) is retried whole
  }, { retries: 3 });
}

/**
 * Chunkrefs (position, chunk id) of a pending NAR, in the caller's transaction, which has made sure
 * the chunks stay alive until it commits (claimChunks, nars.ts linkChunks). The NAR is key-share
 * locked until then (GC cannot delete it under the new links; linkers and claimers of one NAR do
 * not wait for each other), taken after the chunk rows in both callers: no lock cycle between them.
 */
export async function insertChunkRefs(tx: Db, narId: number, links: readonly (readonly [seq: number, chunkId: number])[]): Promise<void> {
  if (links.length === 0) return;
  if ((await LOCK_PENDING_NAR.run(tx, [narId])).rows.length === 0) throw new UploadRowsReaped(`the pending NAR ${narId} is no longer pending`);
  await INSERT_CHUNKREFS.run(tx, tx.engine === "sqlite" ? [narId, batchParam(tx, links)] : [narId, links.map((l) => l[0]), links.map((l) => l[1])]);
}

const INSERT_CHUNKREFS = fixedStatement({
  sqlite: "INSERT INTO chunkref (nar_id, seq, chunk_id) SELECT ?, r.value ->> 0, r.value ->> 1 FROM json_each(?) AS r",
  postgres: "INSERT INTO chunkref (nar_id, seq, chunk_id) SELECT $1::bigint, s, c FROM unnest($2::integer[], $3::bigint[]) AS r(s, c)",
});

/** Where the chunks a claimChunks call links go: the pending NAR, and each row's position in it. */
export interface ClaimLink {
  narId: number;
  seqs: readonly number[];
}

// claimChunks' statements, fixed text (prepared.ts): the batch is one parameter. The state test
// never drives an index (SQLite `+state`, PostgreSQL `state::text`): a table without statistics
// yet (a fresh database's first pushes) made PostgreSQL scan every valid row through the
// (state, holders_count) index on each claim, 1.3-1.9 ms at 4,400 rows and growing with the table,
// where the hash index finds the batch's rows in 0.1 ms.
const CLAIM_FOUND = fixedStatement({
  sqlite:
    "UPDATE chunk SET holders_count = holders_count + 1, held_at = ? WHERE id IN (SELECT min(candidate.id) FROM chunk AS candidate " +
    "WHERE candidate.chunk_hash IN (SELECT value FROM json_each(?)) AND candidate.compression = ? AND +candidate.state = 'V' " +
    `GROUP BY candidate.chunk_hash) AND +state = 'V' RETURNING ${CHUNK_COLUMNS.join(", ")}`,
  postgres:
    "UPDATE chunk SET holders_count = holders_count + 1, held_at = $1 WHERE id IN (SELECT min(candidate.id) FROM chunk AS candidate " +
    "WHERE candidate.chunk_hash = ANY($2::text[]) AND candidate.compression = $3 AND candidate.state::text = 'V' " +
    `GROUP BY candidate.chunk_hash) AND state::text = 'V' RETURNING ${CHUNK_COLUMNS.join(", ")}`,
});
const CLAIM_FOUND_LINKED = fixedStatement({
  // SQLite has one writer at a time: GC cannot mark the row deleted between this look and the link
  sqlite:
    `SELECT ${CHUNK_COLUMNS.join(", ")} FROM chunk WHERE id IN (SELECT min(candidate.id) FROM chunk AS candidate ` +
    "WHERE candidate.chunk_hash IN (SELECT value FROM json_each(?)) AND candidate.compression = ? AND +candidate.state = 'V' " +
    "GROUP BY candidate.chunk_hash) AND +state = 'V'",
  postgres:
    "UPDATE chunk SET held_at = $1 WHERE id IN (SELECT min(candidate.id) FROM chunk AS candidate " +
    "WHERE candidate.chunk_hash = ANY($2::text[]) AND candidate.compression = $3 AND candidate.state::text = 'V' " +
    `GROUP BY candidate.chunk_hash) AND state::text = 'V' RETURNING ${CHUNK_COLUMNS.join(", ")}`,
});
const LOCK_PENDING_NAR = fixedStatement({
  sqlite: "SELECT id FROM nar WHERE id = ? AND +state = 'P'",
  postgres: "SELECT id FROM nar WHERE id = $1 AND state = 'P' FOR KEY SHARE",
});
const CLAIM_OTHERS = fixedStatement({
  sqlite: "SELECT chunk_hash, state, created_at FROM chunk WHERE chunk_hash IN (SELECT value FROM json_each(?)) AND compression = ? AND +state IN ('V', 'P')",
  postgres: "SELECT chunk_hash, state, created_at FROM chunk WHERE chunk_hash = ANY($1::text[]) AND compression = $2 AND state::text IN ('V', 'P')",
});
const INSERT_COLUMNS = "state, chunk_hash, chunk_size, file_hash, file_size, compression, remote_file, remote_file_id, holders_count, created_at, held_at";
const CLAIM_INSERT = fixedStatement({
  sqlite:
    `INSERT INTO chunk (${INSERT_COLUMNS}) SELECT 'P', r.value ->> 0, r.value ->> 1, NULL, NULL, ?, r.value ->> 2, r.value ->> 3, r.value ->> 4, r.value ->> 5, ` +
    "CASE WHEN r.value ->> 4 > 0 THEN ? END FROM json_each(?) AS r ORDER BY r.key RETURNING id, chunk_hash",
  postgres:
    `INSERT INTO chunk (${INSERT_COLUMNS}) SELECT 'P', h, s, NULL::varchar, NULL::bigint, $1::varchar, f, i, n, c, CASE WHEN n > 0 THEN $2::timestamptz END ` +
    "FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::integer[], $8::timestamptz[]) WITH ORDINALITY AS r(h, s, f, i, n, c, k) ORDER BY k RETURNING id, chunk_hash",
});

/**
 * Many pending chunks valid, all or none: one UPDATE per batch of rows (a CASE per column) rather
 * than one per chunk, as an upload marks a batch of chunks at a time.
 */
export async function markChunksValid(db: Db, files: readonly { id: number; fileHash: string; fileSize: number }[]): Promise<void> {
  if (files.length === 0) return;
  await transaction(db, async (tx) => {
    for (const batch of batches(files, maxBatch(tx, 5))) {
      const result = await tx.kysely
        .updateTable("chunk")
        .set({
          state: "V",
          file_hash: sql<string>`CASE ${sql.ref("id")} ${sql.join(batch.map((f) => sql`WHEN ${f.id} THEN ${f.fileHash}`), sql` `)} END`,
          file_size: sql<number>`CASE ${sql.ref("id")} ${sql.join(batch.map((f) => sql`WHEN ${f.id} THEN CAST(${f.fileSize} AS BIGINT)`), sql` `)} END`,
        })
        .where("id", "in", batch.map((f) => f.id))
        .where(notIndexed(tx, "state"), "=", "P")
        .executeTakeFirst();
      if (result.numUpdatedRows !== BigInt(new Set(batch.map((f) => f.id)).size)) {
        throw new UploadRowsReaped(`one of the pending chunks ${batch.map((f) => f.id).join(", ")} is no longer pending`);
      }
    }
  });
}

export async function releaseChunk(db: Db, id: number): Promise<void> {
  await db.kysely
    .updateTable("chunk")
    .set((eb) => ({ holders_count: eb("holders_count", "-", 1) }))
    .where("id", "=", id)
    .where("holders_count", ">", 0)
    .execute();
}

export interface NewChunkRow {
  chunk_hash: string;
  chunk_size: number;
  compression: string;
  /** upstream's RemoteFile JSON */
  remote_file: string;
  remote_file_id: string;
  /** the uploader's hold; default 1 */
  holders_count?: number;
  /** default: now */
  created_at?: Date;
}

export async function insertPendingChunk(db: Db, row: NewChunkRow): Promise<number> {
  const now = new Date();
  const holders = row.holders_count ?? 1;
  const inserted = await db.kysely
    .insertInto("chunk")
    .values({
      state: "P",
      chunk_hash: row.chunk_hash,
      chunk_size: row.chunk_size,
      file_hash: null,
      file_size: null,
      compression: row.compression,
      remote_file: row.remote_file,
      remote_file_id: row.remote_file_id,
      holders_count: holders,
      created_at: row.created_at ?? now,
      held_at: holders > 0 ? now : null,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return inserted.id;
}

/**
 * Pending -> valid once its file is stored; the uploader's hold stays until it releases it.
 * Throws when the chunk is no longer pending (GC reaped it as stale).
 */
export async function markChunkValid(db: Db, id: number, file: { fileHash: string; fileSize: number; chunkSize?: number }): Promise<void> {
  const result = await db.kysely
    .updateTable("chunk")
    .set({
      state: "V",
      file_hash: file.fileHash,
      file_size: file.fileSize,
      ...(file.chunkSize === undefined ? {} : { chunk_size: file.chunkSize }),
    })
    .where("id", "=", id)
    .where(notIndexed(db, "state"), "=", "P")
    .executeTakeFirst();
  if (result.numUpdatedRows === 0n) throw new UploadRowsReaped(`the pending chunk ${id} is no longer pending`);
}

/**
 * Give up upload holds: one decrement per occurrence of an id (a NAR that repeats a chunk holds
 * it once per occurrence). Batched: one statement per distinct multiplicity and batch.
 */
export async function releaseChunks(db: Db, ids: readonly number[]): Promise<void> {
  const counts = new Map<number, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  const byCount = new Map<number, number[]>();
  for (const [id, n] of counts) byCount.set(n, [...(byCount.get(n) ?? []), id]);
  for (const [n, group] of byCount) await RELEASE.run(db, [n, batchParam(db, group)]);
}

const RELEASE = fixedStatement({
  sqlite: "UPDATE chunk SET holders_count = CASE WHEN holders_count > ?1 THEN holders_count - ?1 ELSE 0 END WHERE id IN (SELECT value FROM json_each(?2))",
  postgres: "UPDATE chunk SET holders_count = CASE WHEN holders_count > $1::integer THEN holders_count - $1::integer ELSE 0 END WHERE id = ANY($2::bigint[])",
});

/**
 * After a failed upload: mark the chunks it created deleted (D) unless something uses them now
 * (a hold, or a chunkref of another upload that found them meanwhile), and return those marked.
 * The caller deletes their files and then the rows (deleteChunkRows); a file that cannot be
 * deleted keeps its D row, so GC retries it instead of the file leaking unseen. REPEATABLE READ
 * on PostgreSQL: if another upload touched a row after our snapshot, the statement fails and is
 * retried on fresh data instead of acting on stale data.
 */
export async function discardUnusedChunks(db: Db, ids: readonly number[]): Promise<{ id: number; remote_file: string }[]> {
  const marked: { id: number; remote_file: string }[] = [];
  for (const batch of batches([...new Set(ids)], maxBatch(db))) {
    const rows = await transaction(
      db,
      (tx) =>
        tx.kysely
          .updateTable("chunk")
          .set({ state: "D" })
          .where("id", "in", batch)
          .where(notIndexed(tx, "state"), "in", ["P", "V"])
          .where("holders_count", "=", 0)
          .where((eb) => eb.not(eb.exists(eb.selectFrom("chunkref").select("chunkref.id").whereRef("chunkref.chunk_id", "=", "chunk.id"))))
          .returning(["id", "remote_file"])
          .execute(),
      { isolation: "repeatable read", retries: 5 },
    );
    marked.push(...rows.map((r) => ({ id: Number(r.id), remote_file: r.remote_file })));
  }
  return marked;
}

/**
 * After an upload that lost the database: its chunks still pending are dead (only their creator
 * writes or holds a pending chunk, and its releases never arrived), so they are marked deleted
 * whatever their hold count says. Returns them, for their files to go.
 */
export async function discardDeadPendingChunks(db: Db, ids: readonly number[]): Promise<{ id: number; remote_file: string }[]> {
  const marked: { id: number; remote_file: string }[] = [];
  for (const batch of batches([...new Set(ids)], maxBatch(db))) {
    const rows = await db.kysely
      .updateTable("chunk")
      .set({ state: "D", holders_count: 0 })
      .where("id", "in", batch)
      .where(notIndexed(db, "state"), "=", "P")
      .returning(["id", "remote_file"])
      .execute();
    marked.push(...rows.map((r) => ({ id: Number(r.id), remote_file: r.remote_file })));
  }
  return marked;
}

/** Those of `remoteFileIds` that some chunk row (in any state) still has. */
export async function existingRemoteFileIds(db: Db, remoteFileIds: readonly string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const batch of batches([...new Set(remoteFileIds)], maxBatch(db))) {
    const rows = await db.kysely.selectFrom("chunk").select("remote_file_id").where("remote_file_id", "in", batch).execute();
    for (const r of rows) found.add(r.remote_file_id);
  }
  return found;
}
